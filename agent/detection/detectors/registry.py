"""The detector registry: a plain dict keyed by detector id, built from one table."""

from __future__ import annotations

from ...config.detectors import DetectorsConfig
from ...models import DetectorProfile
from .arpspoof import ArpSpoofDetector
from .base import Detector, Emit
from .beacon import BeaconDetector
from .bruteforce import BruteForceDetector
from .dnstunnel import DnsTunnelDetector
from .drift import ConfigDriftDetector
from .exfil import ExfilDetector
from .ids import IdsAlertDetector
from .ifanomaly import IfAnomalyDetector
from .lateral import LateralMovementDetector
from .linkflap import LinkFlapDetector
from .portscan import PortScanDetector
from .reboot import RebootDetector
from .scan_distributed import DistributedScanDetector
from .snmp_abuse import SnmpAbuseDetector
from .snmp_auth import SnmpAuthDetector
from .sweep import SweepDetector
from .synflood import SynFloodDetector

DETECTORS: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Add a detector class; a duplicate id raises."""
    if cls.id in DETECTORS:
        raise ValueError(f"detector {cls.id!r} registered twice")
    DETECTORS[cls.id] = cls
    return cls


for _cls in (BruteForceDetector, PortScanDetector, SweepDetector, ArpSpoofDetector, DnsTunnelDetector,
             SynFloodDetector, IdsAlertDetector, ConfigDriftDetector, SnmpAuthDetector, LinkFlapDetector,
             RebootDetector, IfAnomalyDetector,
             BeaconDetector, ExfilDetector, LateralMovementDetector, SnmpAbuseDetector,
             DistributedScanDetector):
    register(_cls)


def detector_profiles() -> dict[str, DetectorProfile]:
    """What every registered detector declares for triage: its confidence and suggested playbook."""
    return {det_id: DetectorProfile(cls.confidence, cls.playbook) for det_id, cls in DETECTORS.items()}


def build_detectors(config: DetectorsConfig, emit: Emit) -> list[Detector]:
    """Instantiate every enabled detector with its own config section."""
    unknown = set(config.disabled) - DETECTORS.keys()
    if unknown:
        raise ValueError(f"unknown detectors in detectors.disabled: {', '.join(sorted(unknown))}")
    return [cls(getattr(config, det_id), emit) for det_id, cls in DETECTORS.items() if det_id not in config.disabled]
