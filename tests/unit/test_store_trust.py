"""The runner serves and consumes only what `repro verify` would accept (issue 19, items 2-6).

Each test tampers with a finished run of the three-stage ``chain`` experiment the way a hostile or
unlucky user could, then runs or verifies again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repro.config.load import load_experiment
from repro.errors import InputError
from repro.pipeline.runner import Runner
from repro.provenance.record import seal
from repro.provenance.verify import verify_manifest, write_verdict


def run(experiments, runs, *sets, name="chain"):
    log: list[str] = []
    manifest = Runner(runs, echo=log.append).run(load_experiment(name, "tiny", sets, root=experiments), sets)
    return manifest, log


def status(log: list[str]) -> dict[str, str]:
    return {line.split()[1]: line.split()[2] for line in log if line.startswith("[")}


def entry(manifest: Path, stage: str) -> Path:
    return manifest.parent.parent / "store" / json.loads(manifest.read_text())["stages"][stage]["key"]


def failures(manifest: Path) -> list[str]:
    v, _ = verify_manifest(manifest)
    return [f"{c.name}: {c.detail}" for c in v.checks if c.level == "fail"]


@pytest.fixture
def done(experiments, tmp_path):
    runs = tmp_path / "runs"
    manifest, _ = run(experiments, runs)
    return experiments, runs, manifest


# --- item 2: bytes, not (size, mtime, inode), decide what is served and consumed ---------------

def _edit_in_place(path: Path, data: bytes) -> None:
    """Same size, same inode, mtime restored: invisible to the digest cache's stamp."""
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_ino == st.st_ino and path.stat().st_mtime_ns == st.st_mtime_ns


def test_output_changed_in_place_is_not_served(done):
    experiments, runs, manifest = done
    _, log = run(experiments, runs)  # served once: the digest cache now knows every output
    assert set(status(log).values()) == {"cached"}
    target = entry(manifest, "a") / "out" / "text.txt"
    _edit_in_place(target, b"HELLOhello")
    manifest, log = run(experiments, runs)
    assert status(log) == {"a": "ran", "b": "cached", "c": "cached"}, log
    assert any("rebuilt: output file text.txt modified" in line for line in log)
    assert target.read_text() == "hellohello" and not failures(manifest)


def test_input_changed_after_it_was_served_is_not_consumed(done, monkeypatch):
    """Between serving ``a`` and running ``c`` (which reads it), ``a`` changes in place: ``c``
    refuses to start instead of computing from bytes no statement vouches for."""
    experiments, runs, manifest = done
    from repro.pipeline.store import Store

    a_text = entry(manifest, "a") / "out" / "text.txt"
    real_link = Store.link_stage

    def link_then_tamper(self, experiment, stage, key):
        real_link(self, experiment, stage, key)
        if stage == "b":
            _edit_in_place(a_text, b"HELLOhello")

    monkeypatch.setattr(Store, "link_stage", link_then_tamper)
    with pytest.raises(InputError, match=r"stage 'c': input 'x' .* changed after it was checked.*"
                                         r"output file text.txt modified"):
        run(experiments, runs, "b.params.text=earth")  # b reruns, so c must run too


# --- item 3: a store entry replaced by a link to another entry ---------------------------------

def test_entry_replaced_by_a_link_to_another_entry_is_not_served(done):
    experiments, runs, manifest = done
    a, b = entry(manifest, "a"), entry(manifest, "b")
    os.rename(a, runs / "moved-away")
    a.symlink_to(b.name)
    manifest, log = run(experiments, runs)
    assert status(log)["a"] == "ran" and "symbolic link" in "\n".join(log), log
    assert not a.is_symlink() and (a / "out" / "text.txt").read_text() == "hellohello"
    assert (entry(manifest, "c") / "out" / "text.txt").read_text() == "hellohello+world"
    assert not failures(manifest)


@pytest.mark.parametrize("plant", ["file_link", "dir_link", "socket"])
def test_link_or_socket_inside_an_entry_is_refused(done, plant, monkeypatch):
    """(A FIFO, which used to hang both, is tested through the command, with a timeout:
    tests/func/test_hostile_store.py.)"""
    experiments, runs, manifest = done
    out = entry(manifest, "b") / "out"
    if plant == "file_link":
        (out / "text.txt").unlink()
        (out / "text.txt").symlink_to(entry(manifest, "a") / "out" / "text.txt")
    elif plant == "dir_link":
        (out / "more").symlink_to(entry(manifest, "a") / "out" / "sub")
    else:
        import socket

        monkeypatch.chdir(out)  # a socket path is limited to 108 bytes
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("sock")
        monkeypatch.undo()
    assert any("only plain files" in f for f in failures(manifest)), failures(manifest)
    manifest, log = run(experiments, runs)
    assert status(log)["b"] == "ran" and not failures(manifest)


# --- item 4: a statement must agree with the key it is stored under ----------------------------

def test_edited_statement_is_not_adopted(done):
    experiments, runs, manifest = done
    path = entry(manifest, "b") / "statement.json"
    statement = json.loads(path.read_text())
    build = statement["predicate"]["buildDefinition"]
    build["externalParameters"]["params"]["text"] = "forged"
    build["internalParameters"]["key_components"]["params"]["text"] = "forged"
    path.chmod(0o644)
    path.write_text(json.dumps(statement))
    manifest, log = run(experiments, runs)
    assert status(log)["b"] == "ran" and "do not hash to its store key" in "\n".join(log), log
    statement = json.loads(path.read_text())
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["params"]["text"] == "world"
    assert not failures(manifest)


@pytest.mark.parametrize("content", ["{}", '{"_type": "https://in-toto.io/Statement/v1", "subj', "[1, 2]"])
def test_truncated_or_empty_statement_is_rebuilt_not_a_dead_end(done, content):
    experiments, runs, manifest = done
    path = entry(manifest, "a") / "statement.json"
    path.chmod(0o644)
    path.write_text(content)
    fails = failures(manifest)
    assert any("statement" in f for f in fails), fails
    manifest, log = run(experiments, runs)
    assert status(log)["a"] == "ran" and "statement" in "\n".join(log)
    assert not failures(manifest)


# --- item 5: verify checks the manifest against the declaration and the statements ------------

def _reseal(manifest: Path, change) -> None:
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(seal(data)))


def _redigest(data: dict) -> None:
    """What a careful forger does after editing the declaration: recompute its digest too."""
    from repro.provenance.digest import sha256_json

    data["declared"]["sha256"] = sha256_json(data["declaration"])


def _drop_stage(data: dict) -> None:
    """Remove a stage and its result everywhere in the manifest, consistently."""
    del data["stages"]["c"]
    data["results"].pop("c")
    del data["declaration"]["stages"]["c"]
    data["declaration"]["results"] = []
    data["result_stages"] = []
    _redigest(data)


def _set_param(data: dict) -> None:
    data["declaration"]["stages"]["b"]["params"]["text"] = "forged"


def _set_both(data: dict) -> None:
    _set_param(data)
    _redigest(data)


@pytest.mark.parametrize("change, needle", [
    (lambda d: d["results"].pop("c"), "result c: missing from the manifest"),
    (lambda d: d["results"].pop("a"), "result a: missing from the manifest"),
    (_drop_stage, "as this checkout resolves it"),
    (lambda d: d["stages"].pop("b"), "stage b: declared, but missing from the manifest"),
    (_set_param, "declaration: differs from its recorded digest"),
    (_set_both, "first at stages.b.params.text"),
    (_set_both, "not built from the declared kind, params and seed"),
    (lambda d: d.update(profile="paper"), "profile paper"),
    (lambda d: d["stages"]["c"]["protocol_choices"].update(joiner="-"), "protocol choices differ"),
    (lambda d: d["declared"].update(overrides=["c.params.partial=true"]), "first at stages.c.params"),
])
def test_resealed_manifest_is_checked_against_declaration_and_statements(done, change, needle):
    _, _, manifest = done
    assert not failures(manifest)
    _reseal(manifest, change)
    fails = failures(manifest)
    assert any(needle in f for f in fails), fails


# --- item 6: a verdict vouches for one manifest only -------------------------------------------

def test_a_new_run_withdraws_the_verdict_of_the_manifest_it_replaces(done):
    experiments, runs, manifest = done
    v, _ = verify_manifest(manifest)
    verdict = write_verdict(manifest, v, False)
    assert verdict.is_file()
    run(experiments, runs, "b.params.text=earth")
    assert not verdict.exists()
