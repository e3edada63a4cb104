"""MITRE ATT&CK Enterprise technique and sub-technique ids, as offline data for checking model answers.

The table below is data: each token is a technique id, optionally followed by `:N` (sub-techniques
.001 to .N exist) or `:a,b,c` (only those sub-techniques). It covers Enterprise ATT&CK through
v17 (2025), deprecated sub-technique ids included so an older model is not refused for using them.
A model answer naming an id outside this table is treated as malformed.
"""

from __future__ import annotations

import re

_TABLE = """
T1001:3 T1003:8 T1005 T1006 T1007 T1008 T1010 T1011:1 T1012 T1014 T1016:2 T1018 T1020:1 T1021:8
T1025 T1027:17 T1029 T1030 T1033 T1036:12 T1037:5 T1039 T1040 T1041 T1046 T1047 T1048:3 T1049
T1052:1 T1053:7 T1055:15 T1056:4 T1057 T1059:13 T1068 T1069:3 T1070:10 T1071:5 T1072 T1074:2
T1078:4 T1080 T1082 T1083 T1087:4 T1090:4 T1091 T1092 T1095 T1098:7 T1102:3 T1104 T1105 T1106
T1110:4 T1111 T1112 T1113 T1114:3 T1115 T1119 T1120 T1123 T1124 T1125 T1127:3 T1129 T1132:2
T1133 T1134:5 T1135 T1136:3 T1137:6 T1140 T1176:2 T1185 T1187 T1189 T1190 T1195:3 T1197 T1199
T1200 T1201 T1202 T1203 T1204:5 T1205:2 T1207 T1210 T1211 T1212 T1213:6 T1216:2 T1217 T1218:15
T1219:3 T1220 T1221 T1222:2
T1480:2 T1482 T1484:2 T1485:1 T1486 T1489 T1490 T1491:2 T1495 T1496:4 T1497:3 T1498:2 T1499:4
T1505:6 T1518:2 T1525 T1526 T1528 T1529 T1530 T1531 T1534 T1535 T1537 T1538 T1539 T1542:5
T1543:5 T1546:17 T1547:15 T1548:6 T1550:4 T1552:8 T1553:6 T1554 T1555:6 T1556:9 T1557:4 T1558:5
T1559:3 T1560:3 T1561:2 T1562:13 T1563:2 T1564:14 T1565:3 T1566:4 T1567:4 T1568:3 T1569:3 T1570
T1571 T1572 T1573:2 T1574:14 T1578:5 T1580 T1583:8 T1584:8 T1585:3 T1586:3 T1587:4 T1588:7
T1589:3 T1590:6 T1591:4 T1592:4 T1593:3 T1594 T1595:3 T1596:5 T1597:2 T1598:4 T1599:1 T1600:2
T1601:2 T1602:2 T1606:2 T1608:6 T1609 T1610 T1611 T1612 T1613 T1614:1 T1615 T1619 T1620 T1621
T1622 T1647 T1648 T1649 T1650 T1651 T1652 T1653 T1654 T1656 T1657 T1659 T1665 T1666 T1667 T1668
T1669 T1670 T1671 T1672 T1673 T1674 T1675
"""

TECHNIQUE_ID = re.compile(r"^T[0-9]{4}(?:\.[0-9]{3})?$")


def _parse(table: str) -> frozenset[str]:
    out: set[str] = set()
    for token in table.split():
        base, _, subs = token.partition(":")
        if not re.fullmatch(r"T[0-9]{4}", base) or base in out:
            raise ValueError(f"bad or duplicate ATT&CK table entry {token!r}")
        out.add(base)
        if not subs:
            continue
        numbers = range(1, int(subs) + 1) if "," not in subs and subs.isdigit() else map(int, subs.split(","))
        out.update(f"{base}.{n:03d}" for n in numbers)
    return frozenset(out)


KNOWN_TECHNIQUES: frozenset[str] = _parse(_TABLE)


def normalise(technique: str) -> str:
    """Upper-case and strip an id as a model may write it ("t1110.001 " -> "T1110.001")."""
    return technique.strip().upper()


def is_known(technique: str) -> bool:
    """Whether `technique` (already normalised) is an ATT&CK Enterprise technique or sub-technique id."""
    return technique in KNOWN_TECHNIQUES
