"""junit.xml: one testcase per run, so CI systems show memcycle results natively.

classname = scenario, name = engine/allocator/faults; a <failure> when the
verdict differs from the expected one (message = the first finding, text = the
cycle table and evidence), <skipped> for a skipped run.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from memcycle.records import Report, RunRecord

from .common import counts, finding_headline, outcome, run_label, skip_reason
from .markdown import render_run

# characters XML 1.0 cannot carry at all (stderr tails can hold anything)
_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


def _failure_message(run: RunRecord) -> str:
    head = f"verdict {run.verdict_text}, expected {run.expected_verdict}"
    relevant = [f for f in run.findings if f.verdict == run.verdict] or run.findings
    if relevant:
        head += ": " + finding_headline(relevant[0])
    return head.splitlines()[0] if head else head


def render_junit(report: Report, baseline: Report | None = None) -> str:
    """The text of junit.xml."""
    c = counts(report)
    total_time = sum(r.seconds for r in report.runs)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        {
            "name": "memcycle",
            "tests": str(len(report.runs)),
            "failures": str(c["FAIL"]),
            "errors": "0",
            "skipped": str(c["SKIP"]),
            "time": f"{total_time:.3f}",
            "timestamp": report.created,
        },
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", {"name": "run_id", "value": _clean(report.run_id)})
    for run in report.runs:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": _clean(run.scenario),
                "name": _clean(run_label(run)),
                "time": f"{run.seconds:.3f}",
                "file": _clean(run.scenario_path),
            },
        )
        result = outcome(run)
        if result == "SKIP":
            ET.SubElement(case, "skipped", {"message": _clean(skip_reason(run))})
        elif result == "FAIL":
            failure = ET.SubElement(
                case, "failure", {"message": _clean(_failure_message(run)), "type": run.verdict}
            )
            failure.text = _clean(render_run(run, report.runs, baseline))
        else:
            out = ET.SubElement(case, "system-out")
            out.text = _clean(render_run(run, report.runs, baseline, memory_table=True))
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )
