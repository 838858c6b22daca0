"""tune(): the problems a model runs are tuned with the `fusetune` command into the database
that the operator then reads; the tuned shape resolves to its exact database row."""
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the fusetune PyTorch tests need it")
import fusetune  # noqa: E402
from reference import TOLERANCE, pair  # noqa: E402

from fusetune.tuning import _find_cli  # noqa: E402


def test_tune_records_the_models_problems_and_reloads_the_database(gpu, tmp_path):
    try:
        _find_cli(None)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    db = tmp_path / "tuned.db"
    model, fused = pair(96, 80, 2.0, "cuda")
    container = torch.nn.Sequential(torch.nn.Identity(), fused)
    x = torch.rand(48, 96, device="cuda")
    try:
        results = fusetune.tune(container, x, shapes=[(8, 80, 96)], db=db, max_trials=3)
        assert set(results) == {(48, 80, 96, "fp32", "highest"), (8, 80, 96, "fp32", "highest")}
        assert fusetune.database_path() == str(db)
        name, source, detail = fusetune.resolve(48, 80, 96)
        assert source == "exact", detail
        with torch.no_grad():
            torch.testing.assert_close(fused(x), model(x), atol=TOLERANCE["highest"], rtol=TOLERANCE["highest"])
    finally:
        fusetune.set_database()


def test_tune_names_a_missing_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="`fusetune` command was not found"):
        fusetune.tune(shapes=[(8, 8, 8)], db=tmp_path / "x.db", cli=str(tmp_path / "missing"))


def test_tune_reports_a_failing_command(tmp_path):
    cli = tmp_path / "fusetune"
    cli.write_text("#!/bin/sh\necho 'fusetune: no CUDA device: the tuner needs a GPU' >&2\nexit 1\n")
    cli.chmod(0o755)
    with pytest.raises(RuntimeError, match="exit 1.*the tuner needs a GPU"):
        fusetune.tune(shapes=[(8, 8, 8)], db=tmp_path / "x.db", cli=str(cli))
