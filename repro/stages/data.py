"""Dataset stages: each one's output is a dataset root in its official on-disk layout."""

from repro.stages.kind import REQUIRED, Kind, P

KINDS = (
    Kind("data/synthetic", "repro.data.synthetic:run_stage", doc="the synthetic world (tiny profile)", params=(
        P("dataset", str, REQUIRED, choices="repro.data.synthetic:GENERATORS"),
        P("size", (int, str), "small", ">=1", source="repro.data.synthetic:DEFAULT_SIZE",
          doc="a scale name (repro.data.synthetic.SIZES) or a positive integer"),
        P("judge", str, doc="judge_train only: the judge whose training set is written"),
        P("layout", str, choices=("mirror", "official"),
          doc="mm_safetybench, siuo, mme, seed_bench: the official release's layout or the mirror's"),
        P("unsafe_rate", float, 0.0, "[0,0.5]", source="repro.data.synthetic.train_sets:DEFAULT_UNSAFE_RATE",
          doc="llava_pretrain, llava_instruct: the share of unsafe samples planted (filtering's targets)"),
    )),
    Kind("data/fetch", "repro.data.fetch:fetch_dataset_stage", doc="a dataset pinned in manifest.lock", params=(
        P("dataset", str, REQUIRED, doc="the manifest.lock datasets entry"),
        P("loader", str, choices="repro.data:DATASETS", doc="default: the entry's own name"),
        P("allow_unpinned", bool, False),
        P("check_splits", list, item=str),
        P("local_dir", str, doc="a local mirror (else $REPRO_MIRROR_<KEY>, else the Hub)"),
        P("allow_patterns", list, item=str),
        P("ignore_patterns", list, item=str),
        P("extract", dict, source="kit (unset: repro/data/fetch.py DEFAULT_EXTRACT, per dataset)"),
        P("keep_archives", bool, False),
    )),
)
