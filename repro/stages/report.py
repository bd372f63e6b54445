"""Report stages: tables (and their figures) rendered from evaluations' metrics.json."""

from repro.stages.kind import REQUIRED, Kind, P

KINDS = (
    Kind("report/table", "repro.report.tables:table_stage", report=("table.md", ("figure.png",)),
         doc="rows x columns of evaluation metrics (+ a figure); the loader writes its params from "
             "an experiment's `tables:` (repro/config/tables.py)", params=(
             P("title", str),
             P("columns", list, REQUIRED, doc="[{label, metric, units}]"),
             P("rows", list, REQUIRED, doc="[{label, cells: {column label: input role}, swept}]"),
             P("plot", dict, doc="{kind: lines|tradeoff, x_label, y_label, dotted, safety, helpfulness}"),
         )),
)
