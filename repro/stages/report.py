"""Report stages: tables (and their figures) rendered from evaluations' metrics.json, and the
agreement of two judges on the same responses."""

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
    Kind("report/agreement", "repro.report.agreement:agreement_stage", report=("agreement.md", ()),
         doc="two judges on the same responses: both rates, Cohen's kappa and confusion counts; the "
             "loader writes its params from a table's `second_judge:` (repro/config/judges.py)", params=(
             P("title", str),
             P("rows", list, REQUIRED, doc="[{label, pairs: [{benchmark, first: role, second: role}]}]"),
         )),
)
