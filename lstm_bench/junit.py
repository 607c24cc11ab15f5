"""JUnit XML: the test-result file that CI servers read (Jenkins, GitLab, GitHub's test
reporters), so that a gate of lstm-bench shows as test cases beside a project's own tests.

The layout is Jenkins' ``junit-10.xsd`` (xunit-plugin), which the others read too:
``<testsuites name tests failures errors time>`` holds ``<testsuite name tests failures errors
skipped time timestamp hostname id>`` elements, each with ``<properties>``, its ``<testcase
name classname time>`` elements and ``<system-out>``; a case holds at most one ``<failure>``,
``<error>`` or ``<skipped>`` (attributes ``message`` and ``type``, the figures as its text).
Times are plain decimals (no exponent: the schema's pattern).

Names come from users' files and may hold anything: xml.etree escapes ``<``, ``&`` and quotes,
and ``xml_text`` writes what XML 1.0 cannot hold at all (control characters, lone surrogates,
U+FFFE/U+FFFF) and what would reorder a reader's view (bidirectional overrides) as visible
escapes, so the file always parses.
"""

from __future__ import annotations

import math
import re
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from time import localtime, strftime
from time import time as now

from lstm_bench.printable import visible

PASSED, FAILURE, ERROR, SKIPPED = "passed", "failure", "error", "skipped"
# beyond printable.HIDDEN: what XML 1.0 forbids although it is not a control character
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def xml_text(text, keep: str = "") -> str:
    """``text`` as XML 1.0 can hold it; ``keep``: line breaks a body keeps (``"\\n"``)."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", visible(str(text), keep=keep))


def seconds_text(value: float | None) -> str:
    """A duration as the schema's time pattern takes it: ``12.345`` (never ``1e-05``, ``nan``)."""
    value = float(value or 0.0)
    return f"{value:.3f}" if math.isfinite(value) and value > 0 else "0.000"


@dataclass(frozen=True)
class Case:
    """One test case: ``outcome`` passed, failure, error or skipped; ``message`` the one-line
    reason (a failure's, an error's or a skip's), ``detail`` the figures it rests on (the
    element's text; for a passed case, its ``system-out``)."""

    classname: str
    name: str
    outcome: str = PASSED
    message: str = ""
    detail: str = ""
    kind: str = ""  # the failure's or error's type attribute
    time: float = 0.0


@dataclass(frozen=True)
class Suite:
    name: str
    cases: tuple[Case, ...]
    properties: dict = field(default_factory=dict)
    time: float = 0.0
    timestamp: float = field(default_factory=now)

    def count(self, outcome: str) -> int:
        return sum(case.outcome == outcome for case in self.cases)


def _case(parent, case: Case) -> None:
    element = ET.SubElement(parent, "testcase", name=xml_text(case.name),
                            classname=xml_text(case.classname), time=seconds_text(case.time))
    if case.outcome in (FAILURE, ERROR, SKIPPED):
        attributes = {"message": xml_text(case.message)}
        if case.kind:
            attributes["type"] = xml_text(case.kind)
        outcome = ET.SubElement(element, case.outcome, attributes)
        outcome.text = xml_text(case.detail, keep="\n") or None
    elif case.detail:
        ET.SubElement(element, "system-out").text = xml_text(case.detail, keep="\n")


def render(name: str, suites) -> str:
    """The XML document of ``suites`` under one ``<testsuites>``, counts summed."""
    suites = list(suites)
    root = ET.Element("testsuites", name=xml_text(name),
                      tests=str(sum(len(s.cases) for s in suites)),
                      failures=str(sum(s.count(FAILURE) for s in suites)),
                      errors=str(sum(s.count(ERROR) for s in suites)),
                      time=seconds_text(sum(s.time for s in suites)))
    host = socket.gethostname() or "localhost"
    for number, suite in enumerate(suites):
        element = ET.SubElement(root, "testsuite", {
            "name": xml_text(suite.name), "tests": str(len(suite.cases)),
            "failures": str(suite.count(FAILURE)), "errors": str(suite.count(ERROR)),
            "skipped": str(suite.count(SKIPPED)), "time": seconds_text(suite.time),
            # ISO 8601 without a zone, as the schemas write it
            "timestamp": strftime("%Y-%m-%dT%H:%M:%S", localtime(suite.timestamp)),
            "hostname": xml_text(host), "id": str(number)})
        properties = ET.SubElement(element, "properties")
        for key, value in suite.properties.items():
            ET.SubElement(properties, "property", name=xml_text(key), value=xml_text(value))
        for case in suite.cases:
            _case(element, case)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"
