"""Share a trained classifier on the Hugging Face Hub, and fetch one back.

:func:`push_to_hub` uploads a finished run (its ``model/`` folder and ``results.json``) or a
saved model folder as one commit: the model — for LoRA runs the adapter, whose
``modules_to_save`` carry the trained head — the tokenizer, ``hf_transfer.json`` (label names,
base model) and a model card (``README.md``) made with huggingface_hub's ``ModelCard``. The
local folder is only read until the commit has succeeded; then the card is written next to
the model too. A push that fails midway changes nothing locally and can simply be run again.

The token comes from the ``token`` argument, ``HF_TOKEN`` or ``hf auth login``. It is only
handed to huggingface_hub for its requests: it is never part of a config, a file or a log line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import yaml

from .config import REPO_ID_PATTERN
from .atomic import write_text
from .errors import ConfigError, HfTransferError
from .layout import MODEL_DIR, RESULTS_FILE
from .report import describe_data, describe_filter

logger = logging.getLogger("hf_transfer")

META_FILE = "hf_transfer.json"  # the same name as saving.META_FILE (not imported: no cycle)
CARD_FILE = "README.md"
ADAPTER_CONFIG = "adapter_config.json"
DEFAULT_COMMIT_MESSAGE = "Upload text classifier trained with hf_transfer"
# Eval-matrix rows reported as model-index metrics.
CARD_METRIC_ROWS = ("target/test", "source/test")


class HubError(HfTransferError):
    """A push to, or download from, the Hugging Face Hub failed."""


class HubAuthError(HubError):
    """No usable token: none found, rejected, or read-only."""


class HubPermissionError(HubError):
    """The token's account may not write to the repo (someone else's, or a conflict)."""


class HubPushError(HubError):
    """The push broke off (network, server error). Nothing local changed; run it again."""


@dataclass
class PushResult:
    repo_id: str
    revision: str
    commit_oid: str
    commit_url: str
    files: list  # paths pushed, in the repo
    deleted: list  # paths of the previous version that the commit removed


# --- push -------------------------------------------------------------------------------


def push_to_hub(run_dir_or_model_dir: Union[str, Path], repo_id: str, private: bool = False,
                token: Optional[str] = None, revision: Optional[str] = None,
                commit_message: str = DEFAULT_COMMIT_MESSAGE) -> PushResult:
    """Push a finished run folder (``model/`` + ``results.json``) or a saved model folder to
    the Hub repo ``repo_id`` (``owner/name``), creating it if needed, as a single commit.

    The revision (branch; default ``main``) then holds exactly the classifier and its card:
    files of an earlier push that are not part of this one are removed in the same commit
    (they stay in the repo's history). ``private`` applies when the repo is created.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants

    model_dir, results_file = locate_model(run_dir_or_model_dir)
    check_repo_id(repo_id)
    retry = _push_command(run_dir_or_model_dir, repo_id)
    if constants.HF_HUB_OFFLINE:
        raise HubError(
            f"Cannot push to {repo_id!r}: offline mode is on (HF_HUB_OFFLINE=1). Unset "
            f"HF_HUB_OFFLINE and push again with {retry}."
        )
    token = token or _stored_token()
    if not token:
        raise HubAuthError(
            f"No Hugging Face token found to push to {repo_id!r}: set the HF_TOKEN environment "
            "variable or run `hf auth login` (a token with write access, from "
            f"https://huggingface.co/settings/tokens), or pass token=..., then run {retry}."
        )
    meta = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    results = json.loads(results_file.read_text(encoding="utf-8")) if results_file else None
    card = build_model_card(meta, results, repo_id)
    card_bytes = str(card).encode("utf-8")
    files = _files_to_push(model_dir)
    if ADAPTER_CONFIG in files:
        files[ADAPTER_CONFIG] = _adapter_config_for_repo(files[ADAPTER_CONFIG], repo_id)
    branch = revision or "main"

    api = HfApi(token=token)
    user = None
    try:
        user = _check_token(api, repo_id, retry)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        remote = set(api.list_repo_files(repo_id, revision=branch))
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=content)
                      for name, content in files.items()]
        pushed = set(files) | {CARD_FILE}
        if results_file is not None:
            operations.append(CommitOperationAdd(RESULTS_FILE, str(results_file)))
            pushed.add(RESULTS_FILE)
        operations.append(CommitOperationAdd(CARD_FILE, card_bytes))
        stale = sorted(remote - pushed - {".gitattributes"})
        operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
        info = api.create_commit(repo_id, operations, commit_message=commit_message,
                                 revision=branch, repo_type="model")
    except HubError:
        raise
    except Exception as err:  # noqa: BLE001 - translated into an error that names the fix
        translated = _translate(err, repo_id, user, run_dir_or_model_dir)
        if translated is None:
            raise
        raise translated from err

    # Only now, with the commit in place, does the local folder change: the card that was pushed.
    (model_dir / CARD_FILE).write_bytes(card_bytes)
    logger.info("Pushed %d files to %s (revision %s, commit %s)", len(pushed), repo_id, branch,
                info.oid[:10])
    return PushResult(repo_id, branch, info.oid, str(info.commit_url), sorted(pushed), stale)


def push_run_from_config(run_dir: Union[str, Path], output) -> PushResult:
    """The push at the end of a recipe run, from the ``output`` section of its config."""
    return push_to_hub(run_dir, output.hub_repo_id, private=output.hub_private,
                       revision=output.hub_revision)


def locate_model(path: Union[str, Path]) -> tuple[Path, Optional[Path]]:
    """``(model folder, results.json or None)`` for a run folder or a saved model folder."""
    path = Path(path)
    if (path / META_FILE).is_file():
        model_dir = path
        results = path.parent / RESULTS_FILE if path.name == MODEL_DIR else None
    elif (path / MODEL_DIR / META_FILE).is_file():
        model_dir, results = path / MODEL_DIR, path / RESULTS_FILE
    else:
        raise ConfigError(
            f"{str(path)!r} is neither a finished run folder (with model/{META_FILE}) nor a saved "
            f"model folder (with {META_FILE}). Pass the `output.dir` of a run that saved its model "
            "(`output.save_model` true), or its `model` folder."
        )
    return model_dir, results if results is not None and results.is_file() else None


def check_repo_id(repo_id: str) -> None:
    if not isinstance(repo_id, str) or not REPO_ID_PATTERN.fullmatch(repo_id):
        raise ConfigError(
            f"Hub repo id {repo_id!r} is not of the form `owner/name` (letters, digits, '-', '_', "
            "'.'), e.g. `alice/sentiment-lora`."
        )


def _files_to_push(model_dir: Path) -> dict[str, Union[str, bytes]]:
    """Every file of the saved folder (its path), except its old card (replaced) and hidden
    files."""
    files = {}
    for path in sorted(model_dir.rglob("*")):
        name = path.relative_to(model_dir).as_posix()
        if path.is_file() and name != CARD_FILE and not any(p.startswith(".") for p in name.split("/")):
            files[name] = str(path)
    return files


def _adapter_config_for_repo(path: str, repo_id: str) -> bytes:
    """The adapter config as pushed: its base is the repo itself, which holds the classifier
    under the adapter (``config.json`` with the label names, ``model.safetensors``).
    transformers' pipeline and peft's AutoPeftModelForSequenceClassification build a Hub
    adapter's model from that base; the pretrained encoder's own config would give them a
    2-label head that the adapter's head does not fit."""
    config = json.loads(Path(path).read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = repo_id
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _stored_token() -> Optional[str]:
    from huggingface_hub import get_token

    return get_token()


def _check_token(api, repo_id: str, retry: str) -> str:
    """The token's account name; a clear error for a rejected or read-only token."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = api.whoami()
    except HfHubHTTPError as err:
        if _status(err) == 401:
            raise HubAuthError(
                "The Hugging Face token was rejected (HTTP 401: invalid or expired). Create a token "
                "with write access at https://huggingface.co/settings/tokens, set HF_TOKEN or run "
                f"`hf auth login`, then run {retry}."
            ) from None
        raise
    role = (info.get("auth", {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise HubAuthError(
            f"The Hugging Face token of {info.get('name')!r} is read-only: pushing to {repo_id!r} "
            "needs a token with write access (https://huggingface.co/settings/tokens). Set it in "
            f"HF_TOKEN or with `hf auth login`, then run {retry}."
        )
    return info.get("name")


def _status(err) -> Optional[int]:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _push_command(path, repo_id: str) -> str:
    return f"`hf-transfer push {path} {repo_id}`"


def _translate(err: Exception, repo_id: str, user: Optional[str], path) -> Optional[HubError]:
    """A Hub or network failure as an error that says what to do; None for anything else."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    namespace, name = repo_id.split("/")
    retry = _push_command(path, repo_id)
    for cause in _chain(err):
        status = _status(cause) if isinstance(cause, HfHubHTTPError) else None
        if status in (403, 409) or isinstance(cause, RepositoryNotFoundError):
            mine = _push_command(path, f"{user or 'YOUR_NAME'}/{name}")
            return HubPermissionError(
                f"Cannot push to {repo_id!r} (HTTP {status}): the repo belongs to {namespace!r}, and "
                f"the token's account ({user or 'unknown'}) has no write access to it. Push to a repo "
                f"in your own namespace, e.g. {mine}, or use a token of an account with write access "
                f"to {namespace!r}. Nothing was pushed; the local folder is unchanged."
            )
        if status == 401:
            return HubAuthError(
                f"The Hub refused the token while pushing to {repo_id!r} (HTTP 401). Use a token with "
                f"write access (https://huggingface.co/settings/tokens), then run {retry}."
            )
        if (status is not None and (status >= 500 or status in (408, 429))) or _is_network_error(cause):
            return HubPushError(
                f"The push to {repo_id!r} broke off ({type(cause).__name__}: {_short(cause)}). The local "
                "folder is untouched, and the repo only changes when the push's single commit goes "
                f"through: run the same push again, e.g. {retry} (files that already reached the Hub "
                "are not uploaded twice)."
            )
    return None


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _is_network_error(err: BaseException) -> bool:
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    # httpx / httpcore transport errors (huggingface_hub's HTTP stack), without importing them.
    return any(cls.__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2")
               and cls.__name__ in ("TransportError", "NetworkError", "TimeoutException",
                                    "RemoteProtocolError", "ConnectError", "ReadError", "WriteError")
               for cls in type(err).__mro__)


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else "no details"


# --- download -----------------------------------------------------------------------------


def download_classifier(repo_id: str, revision: Optional[str] = None,
                        token: Optional[str] = None) -> Path:
    """Download (or find in the cache) a classifier repo; the local snapshot folder.

    Offline mode (``HF_HUB_OFFLINE=1``) is respected: then only the cache is used.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id, revision=revision, token=token, repo_type="model"))
    except RepositoryNotFoundError:
        raise ConfigError(
            f"{repo_id!r} is not a local folder, and no Hub model repo of that id is visible: check "
            "the path or the repo id; for a private repo set HF_TOKEN (or `hf auth login`) or pass "
            "token=..."
        ) from None
    except RevisionNotFoundError:
        raise ConfigError(f"The Hub repo {repo_id!r} has no revision {revision!r}: check `revision`.") from None
    except LocalEntryNotFoundError as err:
        if constants.HF_HUB_OFFLINE:
            raise ConfigError(
                f"{repo_id!r} is not a local folder, and offline mode (HF_HUB_OFFLINE=1) stops it "
                "from being downloaded from the Hub (it is not in the cache). Unset HF_HUB_OFFLINE "
                "to download it, or pass a local model folder."
            ) from None
        raise HubError(
            f"Could not download {repo_id!r} from the Hub ({_short(err)}): check the network "
            "connection and try again."
        ) from err
    except HfHubHTTPError as err:
        raise HubError(f"Could not download {repo_id!r} from the Hub: {_short(err)}") from err


# --- model card -------------------------------------------------------------------------------


def write_model_card(model_dir: Union[str, Path], results: Optional[dict] = None,
                     shown_as: Optional[str] = None) -> None:
    """Write the card (``README.md``) of a saved model folder: the card a push writes, with
    ``shown_as`` (default: the folder) as what its snippets load."""
    model_dir = Path(model_dir)
    meta = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    shown_as = shown_as or str(model_dir)
    card = build_model_card(meta, results, shown_as, title=_local_title(Path(shown_as)))
    write_text(model_dir / CARD_FILE, str(card))


def _local_title(folder: Path) -> str:
    """A run's ``model`` folder is named after its run folder."""
    return folder.parent.name if folder.name == MODEL_DIR and folder.parent.name else folder.name


def build_model_card(meta: dict, results: Optional[dict], repo_id: str, title: Optional[str] = None):
    """A ``huggingface_hub.ModelCard`` for a saved classifier and (optionally) its run results;
    ``repo_id`` (a Hub id, or a local folder) is what its snippets load, ``title`` its heading
    (default: the repo's name)."""
    from huggingface_hub import ModelCard, ModelCardData

    results = results or {}
    config = results.get("config") or {}
    is_adapter = meta.get("format") == "peft"
    name = title or repo_id.split("/")[-1]
    base_model = meta.get("base_model")
    hub_base = base_model if _is_hub_id(base_model) else None
    scenario, strategy = results.get("scenario"), results.get("strategy")
    tuning = meta.get("tuning") or (config.get("tuning") or {}).get("method")
    data = config.get("data") or {}
    hub_datasets = [d["hub_id"] for d in (data.get("source"), data.get("target")) if d and d.get("hub_id")]

    eval_results = _eval_results(results, data)
    card_data = ModelCardData(
        base_model=hub_base,
        library_name="peft" if is_adapter else "transformers",
        pipeline_tag="text-classification",
        tags=[t for t in ("hf-transfer", scenario, strategy, tuning, "text-classification") if t],
        datasets=list(dict.fromkeys(hub_datasets)) or None,
        # model-index needs a model name; without metrics there is none to write.
        model_name=name if eval_results else None,
        eval_results=eval_results or None,
    )
    sections = [f"# {name}", _summary(meta, results, hub_base, base_model, is_adapter)]
    if results.get("eval_matrix"):
        sections.append(_eval_section(results, data))
    if isinstance(results.get("transfer"), dict) and results["transfer"]:
        sections.append(_transfer_section(results["transfer"]))
    sections.append(_how_to_load(repo_id, meta, is_adapter))
    if config:
        sections.append("## Training configuration\n\nThe full configuration of the run "
                        "(`results.json` in this repo has all results):\n\n```yaml\n"
                        + yaml.safe_dump(_redact(config), sort_keys=False).rstrip() + "\n```")
    sections.append(_files_section(is_adapter))
    body = "\n\n".join(sections) + "\n"
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def _is_hub_id(value) -> bool:
    return (isinstance(value, str) and not value.startswith((".", "/", "~"))
            and REPO_ID_PATTERN.fullmatch(value if "/" in value else f"x/{value}") is not None)


def _eval_results(results: dict, data: dict) -> list:
    from huggingface_hub import EvalResult

    rows = [(name, (results.get("eval_matrix") or {}).get(name)) for name in CARD_METRIC_ROWS]
    rows = [(name, row) for name, row in rows if row]
    # model-index groups metrics by (dataset type, config, split): source and target must differ.
    datasets = {}
    for name, _ in rows:
        role = name.split("/")[0]
        spec = data.get(role) or {}
        kind = spec.get("hub_id") or (f"builtin:{spec['builtin']}" if spec.get("builtin") else "local-files")
        subset = "; ".join(x for x in (spec.get("hub_config"), describe_filter(spec)) if x) or None
        datasets[role] = [kind, subset, spec]
    if len({(kind, subset) for kind, subset, _ in datasets.values()}) < len(datasets):
        for role, entry in datasets.items():
            entry[1] = f"{role}; {entry[1]}" if entry[1] else role
    out = []
    for name, row in rows:
        role, split = name.split("/")
        kind, subset, spec = datasets[role]
        common = dict(task_type="text-classification", task_name="Text Classification",
                      dataset_type=kind, dataset_name=f"{role} ({describe_data(spec)})",
                      dataset_config=subset, dataset_split=split)
        out.append(EvalResult(metric_type="accuracy", metric_name=f"{role} accuracy",
                              metric_value=round(float(row["accuracy"]), 4), **common))
        out.append(EvalResult(metric_type="f1", metric_name=f"{role} macro-F1", metric_args={"average": "macro"},
                              metric_value=round(float(row["macro_f1"]), 4), **common))
    return out


def _summary(meta: dict, results: dict, hub_base, base_model, is_adapter: bool) -> str:
    labels = ", ".join(f"`{label}`" for label in meta.get("labels", []))
    base = f"[`{hub_base}`](https://huggingface.co/{hub_base})" if hub_base else f"`{base_model}` (a local model)"
    what = ("A LoRA adapter (with its trained classification head)" if is_adapter
            else "A text classifier")
    lines = [f"{what} fine-tuned from {base} with "
             "[hf_transfer](https://github.com/hf-transfer/hf-transfer-recipes)."]
    if results.get("scenario"):
        lines.append(f"Scenario `{results['scenario']}`, strategy `{results.get('strategy')}`, "
                     f"tuning method `{meta.get('tuning')}`.")
    lines.append(f"Labels: {labels}.")
    data = (results.get("config") or {}).get("data") or {}
    if data:
        lines.append(f"Source data: {describe_data(data.get('source'))}; target data: "
                     f"{describe_data(data.get('target'))}.")
    lines.append(f"Trained with hf_transfer {meta.get('hf_transfer_version', '?')}.")
    return "\n".join(lines)


def _eval_section(results: dict, data: dict) -> str:
    rows = ["| split | n | accuracy | macro-F1 |", "|---|---:|---:|---:|"]
    for split, m in results["eval_matrix"].items():
        rows.append(f"| {split} | {m.get('n', '')} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |")
    return ("## Evaluation\n\nThe final model on every evaluation split (`source` = "
            f"{describe_data(data.get('source'))}, `target` = {describe_data(data.get('target'))}):"
            "\n\n" + "\n".join(rows))


# Keys of results.json's `transfer` section (hf_transfer.baselines) rendered as tables or text.
_TRANSFER_KEYS = ("verdict", "summary", "arms", "gain", "rule", "runs", "seeds", "split", "decided_on",
                  "reference", "n_test")


def _transfer_section(transfer: dict) -> str:
    from .report import transfer_tables

    lines = ["## Transfer verdict", ""]
    verdict = transfer.get("verdict") or transfer.get("summary")
    if verdict:
        lines += [f"**{verdict}**", ""]
    if transfer.get("verdict") and transfer.get("summary"):
        lines += [str(transfer["summary"]), ""]
    structured = isinstance(transfer.get("arms"), dict) and isinstance(transfer.get("gain"), dict)
    if structured:
        lines += transfer_tables(transfer)
        if transfer.get("rule"):
            lines += [f"Rule (on `{transfer.get('decided_on')}` against `{transfer.get('reference')}`): "
                      f"{transfer['rule']}.", ""]
    for key, value in transfer.items():
        if key in (_TRANSFER_KEYS if structured else ("verdict", "summary")):
            continue
        shown = value if isinstance(value, (str, int, float, bool)) or value is None else json.dumps(value)
        lines.append(f"- {key}: {shown}")
    return "\n".join(lines).rstrip()


def _how_to_load(repo_id: str, meta: dict, is_adapter: bool) -> str:
    labels = meta.get("labels") or []
    # A pooled classifier (`model.pooling` mean/last) is built by the folder's own modeling file:
    # transformers runs it only when asked to, and refuses the folder otherwise.
    pooled = meta.get("pooling", "cls") != "cls"
    remote = ", trust_remote_code=True" if pooled else ""
    text = ("## How to load\n\nWith hf_transfer (`pip install hf-transfer-recipes`):\n\n```python\n"
            "from hf_transfer import load_classifier\n\n"
            f'classifier = load_classifier("{repo_id}")\n'
            "print(classifier.predict([\"an example text to classify\"]))  # label names\n```\n\n"
            "With transformers alone"
            + (" (and `peft` installed: it applies the LoRA adapter)" if is_adapter else "")
            + f", label names ({', '.join(f'`{label}`' for label in labels)}) included:\n\n```python\n"
            "from transformers import pipeline\n\n"
            f'classify = pipeline("text-classification", model="{repo_id}"{remote})\n'
            "print(classify(\"an example text to classify\", top_k=None))  # every label's probability\n```")
    if pooled:
        text += (f"\n\nThe classifier reads the {meta['pooling']} of the encoder's last hidden states (`model."
                 "pooling`), not the architecture's own head: `modeling_hf_transfer_pooling.py` in this "
                 "folder builds it, so transformers needs `trust_remote_code=True` (and refuses the "
                 "folder without it rather than load a classifier that reads the wrong representation).")
    if is_adapter:
        text += ("\n\nWith peft:\n\n```python\n"
                 "from peft import AutoPeftModelForSequenceClassification\n\n"
                 f'model = AutoPeftModelForSequenceClassification.from_pretrained("{repo_id}"{remote})\n```\n\n'
                 "Its base (`base_model_name_or_path` in `adapter_config.json`) is the classifier "
                 "saved next to the adapter, without LoRA: the pretrained encoder and the trained head"
                 + ("." if _is_hub_id(repo_id) else
                    ", named by this folder's absolute path (after moving the folder, load it with "
                    "`pipeline` or `load_classifier`, which do not read that path).") + " "
                 "To get a standalone model without PEFT, merge the adapter: "
                 "`hf-transfer merge MODEL_DIR OUT_DIR` (or `hf_transfer.merge_adapter`).")
    else:
        text += ("\n\nOr the model itself:\n\n```python\n"
                 "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
                 f'model = AutoModelForSequenceClassification.from_pretrained("{repo_id}"{remote})\n'
                 f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")\n```')
    return text


def _files_section(is_adapter: bool) -> str:
    model = ("`adapter_config.json`, `adapter_model.safetensors` (LoRA weights and the trained head); "
             "`config.json` (the classifier, with the label names), `model.safetensors` (the classifier "
             "under the adapter: the pretrained encoder and the trained head)"
             if is_adapter else "`config.json` (with the label names), `model.safetensors`")
    return (f"## Files\n\n{model}; the tokenizer; `hf_transfer.json` (label names in id order, base "
            "model, max length); `results.json` (the run's full results, when pushed from a run).")


_SECRET_WORDS = ("token", "secret", "password", "api_key")


def _redact(value):
    """The config holds no secrets; drop anything that looks like one all the same."""
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()
                if not any(word in str(k).lower() for word in _SECRET_WORDS)}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value
