"""Every detector declares its own confidence and suggested playbook, and the playbook exists."""

from __future__ import annotations

from watchstander.agent.detection.detectors.registry import DETECTORS, detector_profiles
from watchstander.playbooks import load_library


def test_every_detector_declares_a_profile() -> None:
    """Confidence in (0, 1) and a playbook id (or None) on every registered class."""
    profiles = detector_profiles()
    assert set(profiles) == set(DETECTORS)
    for det_id, profile in profiles.items():
        assert 0 < profile.confidence < 1, det_id


def test_suggested_playbooks_are_in_the_shipped_library() -> None:
    """A detector cannot suggest a playbook that does not exist."""
    library = load_library()
    for det_id, profile in detector_profiles().items():
        if profile.playbook is not None:
            assert profile.playbook in library, f"{det_id} suggests unknown playbook {profile.playbook}"
