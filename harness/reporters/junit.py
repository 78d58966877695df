"""junit.xml: one testcase per run, so CI systems show memcycle results natively.

classname = scenario, name = engine/allocator/faults; a <failure> when the
verdict differs from the expected one, an <error> when the run is `error` (memcycle
or the adapter could not run it: counted in `errors`, never in `failures`), <skipped>
for a skipped run. The `message` attribute is one plain line (verdict, cycle, step,
what happened: `text.headline`); the element text is the plain-text cycle table and
evidence (`text.render_run_text`): no emoji or markdown in either.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from memcycle.evidence import skip_reason
from memcycle.records import Report

from .common import counts, outcome, run_label
from .text import headline, render_run_text

# characters XML 1.0 cannot carry at all (stderr tails can hold anything)
_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


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
            "errors": str(c["ERROR"]),
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
        elif result in ("FAIL", "ERROR"):
            element = ET.SubElement(
                case,
                "failure" if result == "FAIL" else "error",
                {"message": _clean(headline(run)), "type": run.verdict},
            )
            element.text = _clean(render_run_text(run, report.runs, baseline))
        else:
            out = ET.SubElement(case, "system-out")
            out.text = _clean(render_run_text(run, report.runs, baseline))
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )
