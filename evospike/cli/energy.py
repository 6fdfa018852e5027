"""``evospike energy MODEL``: SynOps, activation sparsity and energy per inference of a network,
beside ANN baselines (ResNet-18 on an ECG beat, BERT-base on an SST-2 sentence).

MODEL is a network (a ``.py`` defining ``build()``, or a saved network ``.h5``, e.g. a trained
model exported as an IR network), run on the torch backend for ``--duration`` with every
population and spike source recorded; or, with ``--results``, the counts come from a run
already made of that network. MODEL may also be a training checkpoint (``checkpoint.pt`` of
``evospike train``): the trained model is rebuilt, exported as an IR network with one replica
per test sample (``--test-samples``) and run for its own steps x dt, so the figures are
averages over those test inputs. A checkpoint of the SST-2 spiking transformer
(`evospike.models.sst2`, not an IR network: attention multiplies spike trains) is counted on
the torch model itself (`evospike.energy.count_text_transformer_ops`: forward hooks, ACs where
inputs are spikes, MACs where they are graded, the coincidence attention counted explicitly),
sentence by sentence without padding; MACs, which the Loihi profiles do not price, are priced
with ``--mac-hardware`` and the output says so. A checkpoint is read as plain data
(``weights_only=True``): one that would need unpickling is refused, since loading it could
run code.

Each ANN baseline line says whether it is comparable: a baseline of the checkpoint's own task
on its own input size gets the energy ratio; one of another task (a digits model beside the
ECG ResNet-18) or another input size is marked "not comparable" and gets no ratio; a network
file records no task, so its ratio is printed with the condition under which it would hold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evospike.errors import EvoSpikeError


def register(subparsers) -> None:
    from evospike.hardware.energy_costs import PROFILES

    p = subparsers.add_parser("energy", help="synaptic operations, activation sparsity and "
                                             "energy per inference, beside ANN baselines")
    p.add_argument("model", help=".py file defining build() -> Network, a saved network .h5, "
                                 "or a checkpoint.pt of `evospike train`")
    p.add_argument("--results", default=None,
                   help="results .h5 of a run of MODEL (default: run it now on torch)")
    p.add_argument("--duration", default=None,
                   help="simulated time of the run (one inference), e.g. 100ms (default "
                        "100ms; a checkpoint runs its own steps x dt); for a model.h5 exported "
                        "by `evospike train`, give its steps x dt")
    p.add_argument("--test-samples", type=int, default=16,
                   help="checkpoint MODEL: test samples to average over (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trials", type=int, default=1,
                   help="independent trials (inferences), averaged")
    p.add_argument("--inferences-per-trial", type=int, default=1,
                   help="samples classified per trial (a network of K replicas: K)")
    p.add_argument("--hardware", default="loihi2", choices=sorted(PROFILES),
                   help="energy profile of the SNN (default loihi2)")
    p.add_argument("--baseline", default="auto",
                   choices=["auto", "all", "resnet18-ecg", "bert-base-sst2", "none"],
                   help="ANN baseline(s) to print beside it (default auto: a checkpoint "
                        "trained on ECG / sentences gets ResNet-18 / BERT-base on its own "
                        "test inputs, anything else both, each labelled: a baseline of "
                        "another task or input size is marked not comparable and gets no "
                        "ratio; a network file's task is not recorded, which its line says)")
    p.add_argument("--baseline-hardware", default="horowitz45-fp32", choices=sorted(PROFILES),
                   help="energy profile of the ANN baseline (default horowitz45-fp32)")
    p.add_argument("--ecg-length", type=int, default=None,
                   help="samples of the ECG beat for the ResNet-18 baseline (default: the "
                        "checkpoint's beat length, else 256)")
    p.add_argument("--seq-len", type=int, default=None,
                   help="tokens of the SST-2 sentence for the BERT-base baseline, [CLS] and "
                        "[SEP] included (default: the mean length of the checkpoint's test "
                        "sentences + 2, else 32)")
    p.add_argument("--mac-hardware", default=None, choices=sorted(PROFILES),
                   help="profile that prices the SNN's MACs where --hardware has no MAC "
                        "figure (the Loihi profiles; default: --baseline-hardware)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run_energy)


def _load_results(path: str):
    from evospike.results import Results

    return Results.load(path)


def _load_checkpoint(path: Path, n_samples: int):
    """(config, splits, model with its best state, test samples used) of checkpoint
    ``path``."""
    from evospike.training.checkpoint import read_checkpoint
    from evospike.training.config import TrainConfig
    from evospike.training.data import load_splits
    from evospike.training.trainer import build_model

    if n_samples < 1:
        raise EvoSpikeError(f"--test-samples must be at least 1 (got {n_samples})")
    # weights_only=True inside: a file that would need unpickling is refused, never run
    state = read_checkpoint(path, map_location="cpu", required=("config", "model"))
    cfg = TrainConfig.from_dict(state["config"])
    splits = load_splits(cfg.dataset, cfg.dataset_options, cfg.validation_fraction, cfg.seed)
    model = build_model(cfg, splits)
    try:
        model.load_state_dict(state.get("best_state") or state["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        detail = " ".join(str(exc).split())
        raise EvoSpikeError(f"checkpoint '{path}': its weights do not fit the model its config "
                            f"describes: {type(exc).__name__}: {detail[:200]}") from None
    return cfg, splits, model, min(n_samples, len(splits.test))


#: the task each ANN baseline solves, and the task of each training data set
BASELINE_TASKS = {"resnet18-ecg": "ECG beat classification",
                  "bert-base-sst2": "SST-2 sentence sentiment"}
DATASET_TASKS = {"mitbih": "ECG beat classification",
                 "synthetic_ecg": "ECG beat classification",
                 "sst2": "SST-2 sentence sentiment",
                 "synthetic_sentiment": "SST-2 sentence sentiment",
                 "digits": "8x8 handwritten digits",
                 "dvs128_gesture": "DVS128 gesture recognition",
                 "synthetic_dvs_gesture": "DVS128 gesture recognition"}


def _hints(cfg, splits, x) -> dict:
    """The task and input of a checkpoint's model, and the ANN baseline that sees the same
    input where one exists: the beat length, or the sentence length in tokens (word tokens;
    BERT's WordPiece splits rare words further) plus [CLS] and [SEP]."""
    task = DATASET_TASKS.get(cfg.dataset, f"data set '{cfg.dataset}'")
    hints = {"task": task, "n_classes": int(splits.n_classes),
             "input": " x ".join(str(int(d)) for d in splits.sample_shape)}
    if cfg.dataset in ("mitbih", "synthetic_ecg"):
        length = int(splits.sample_shape[-1])
        hints.update(baseline="resnet18-ecg", ecg_length=length,
                     input=f"1 x {length} samples")
    elif cfg.dataset in ("sst2", "synthetic_sentiment"):
        mean_tokens = float((x != 0).sum(-1).double().mean())
        seq_len = max(1, round(mean_tokens)) + 2
        hints.update(baseline="bert-base-sst2", seq_len=seq_len, input=f"{seq_len} tokens")
    return hints


def baseline_comparison(name: str, hints: dict, ecg_length: int,
                        seq_len: int) -> tuple[bool | None, str]:
    """(comparable, why) of ANN baseline ``name`` (on an input of ``ecg_length`` samples or
    ``seq_len`` tokens) beside the SNN that ``hints`` describe (`_hints`; empty when MODEL is
    a network file, whose task is not recorded). Comparable only for the same task and the
    same input size; None where the SNN's task is unknown."""
    task = BASELINE_TASKS[name]
    base_input = f"1 x {ecg_length} samples" if name == "resnet18-ecg" else f"{seq_len} tokens"
    if "task" not in hints:
        return None, (f"the network's task is not recorded: comparable only if it does "
                      f"{task} on inputs of {base_input}")
    ours = f"{hints['task']}, input {hints['input']}"
    if hints["task"] != task:
        return False, (f"not comparable: baseline for another task ({task}, input "
                       f"{base_input}; this model: {ours})")
    same_size = (hints.get("ecg_length") == ecg_length if name == "resnet18-ecg"
                 else hints.get("seq_len") == seq_len)
    if not same_size:
        return False, (f"not comparable: same task, other input size (baseline "
                       f"{base_input}; this model: {hints['input']})")
    return True, f"same task and input: {task}, {base_input}"


def _transformer_counts_from_checkpoint(path: Path, cfg, splits, model, n: int, seed: int,
                                        progress: bool = False):
    """(OpCounts, description, hints) of the SST-2 spiking transformer of checkpoint ``path``,
    counted on the torch model over ``n`` test sentences."""
    from evospike.energy import count_text_transformer_ops

    x = splits.test.x[:n]
    counts = count_text_transformer_ops(model, x, seed=seed, progress=progress)
    counts.model = cfg.name
    what = (f"trained model of '{path}' on {n} test sentence(s) of {splits.description}"
            + (" [SYNTHETIC DATA]" if splits.synthetic else ""))
    return counts, what, _hints(cfg, splits, x)


def _network_from_checkpoint(path: Path, n_samples: int, loaded=None):
    """(IR network with one replica per test sample, run duration in ms, description) of the
    model trained into checkpoint ``path`` (its best state, as `evospike train` exports)."""
    cfg, splits, model, n = loaded or _load_checkpoint(path, n_samples)
    if not hasattr(model, "to_network"):
        raise EvoSpikeError(f"the model of '{path}' has no IR export (to_network)")
    x = splits.test.x[:n]
    net = model.to_network(x, name=cfg.name)
    what = (f"trained model of '{path}' on {n} test sample(s) of {splits.description}"
            + (" [SYNTHETIC DATA]" if splits.synthetic else ""))
    return net, model.steps * model.dt_ms, n, what, _hints(cfg, splits, x)


def _run_network(net, args, duration_ms: float | None = None):
    from evospike.backends import get_backend
    from evospike.units import parse_duration_ms

    if duration_ms is not None:
        duration = duration_ms
    else:
        duration = parse_duration_ms(args.duration or "100ms", "--duration")
    if args.trials < 1:
        raise EvoSpikeError(f"--trials must be at least 1 (got {args.trials})")
    recorded = {m.target for m in net.spike_monitors}
    todo = [n for n in list(net.populations) + list(net.sources) if n not in recorded]
    if todo:
        net.record_spikes(*todo)
    seeds = tuple(range(args.seed, args.seed + args.trials))
    runner = get_backend("torch").compile(net, seeds=seeds, progress=not args.no_progress)
    return runner.run(duration)


def format_energy(pj: float) -> str:
    for unit, scale in (("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if pj >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def run_energy(args: argparse.Namespace) -> int:
    from evospike.cli.checks import check_seeds
    from evospike.energy import ann_baseline, count_network_ops
    from evospike.hardware.energy_costs import get_profile
    from evospike.model_loading import load_model

    # the seeds are checked before anything is loaded; numpy would refuse a negative one only
    # when the run starts, with a message naming neither option nor value
    if args.trials < 1:
        raise EvoSpikeError(f"--trials must be at least 1 (got {args.trials})")
    check_seeds(args.seed, args.trials)
    model = Path(args.model)
    if model.suffix in (".h5", ".hdf5") and model.exists():
        import h5py

        try:
            with h5py.File(model, "r") as f:
                fmt = f.attrs.get("format", "")
        except OSError as exc:
            raise EvoSpikeError(f"'{model}' is not an HDF5 file: {exc}") from None
        if (fmt.decode() if isinstance(fmt, bytes) else str(fmt)) == "evospike-results":
            raise EvoSpikeError(f"'{model}' is a results file, which holds spikes but not the "
                                f"synapses they drive: give the network as MODEL and the "
                                f"results with --results {model}")
    profile = get_profile(args.hardware)
    base_profile = get_profile(args.baseline_hardware)
    mac_profile = get_profile(args.mac_hardware or args.baseline_hardware)
    inferences = args.inferences_per_trial
    hints: dict = {}
    counts = None
    if model.suffix == ".pt":
        if args.results:
            raise EvoSpikeError("--results goes with a network MODEL, not a checkpoint")
        if not model.exists():
            raise EvoSpikeError(f"checkpoint '{model}' does not exist")
        loaded = _load_checkpoint(model, args.test_samples)
        from evospike.models.sst2 import SpikingTextClassifier

        if isinstance(loaded[2], SpikingTextClassifier):
            if args.duration is not None or args.trials != 1:
                raise EvoSpikeError("--duration and --trials do not apply to a transformer "
                                    "checkpoint: it is counted on the torch model, sentence "
                                    "by sentence")
            counts, what, hints = _transformer_counts_from_checkpoint(
                model, *loaded, seed=args.seed, progress=not args.no_progress)
            source = f"{what}; counted on the torch model (forward hooks; not an IR network)"
            header = (f"model '{counts.model}' ({type(loaded[2]).__name__}, "
                      f"{sum(p.numel() for p in loaded[2].parameters())} parameters)")
        else:
            net, model_ms, inferences, what, hints = _network_from_checkpoint(
                model, args.test_samples, loaded)
            if args.duration is not None:
                raise EvoSpikeError(f"--duration does not apply to a checkpoint: its model "
                                    f"runs {model_ms:g} ms per inference")
            results = _run_network(net, args, model_ms)
            source = f"{what}; run now on torch: {results.duration_ms:g} ms"
    elif args.results:
        net = load_model(model)
        results = _load_results(args.results)
        if results.meta.get("network", net.name) != net.name:
            raise EvoSpikeError(f"--results '{args.results}' are a run of network "
                                f"'{results.meta.get('network')}', not of '{net.name}'")
        source = f"results '{args.results}' ({results.duration_ms:g} ms x {results.n_trials} " \
                 f"trial(s), backend {results.meta.get('backend', '?')})"
    else:
        net = load_model(model)
        results = _run_network(net, args)
        source = f"run now on torch: {results.duration_ms:g} ms x {results.n_trials} trial(s)"
    if counts is None:
        counts = count_network_ops(net, results, inferences_per_trial=inferences)
        header = f"network '{net.name}': {net.n_neurons} neurons, {net.n_synapses} synapses"
    snn_energy = counts.energy(profile, fallback=mac_profile)
    lines = [
        f"{header}; {source}",
        f"per inference (averaged over {counts.n_inferences}):",
        f"  SynOps (effective accumulates)  {counts.acs:.4g}",
    ]
    if counts.macs:
        lines.append(f"  MACs (graded inputs)            {counts.macs:.4g}")
    lines += [
        f"  dense synaptic operations       {counts.dense_ops:.4g}",
        "  activation sparsity             "
        + ("n/a (no population)" if counts.activation_sparsity is None
           else f"{counts.activation_sparsity:.4f}"),
        f"  neuron updates                  {counts.neuron_updates_active:.4g} spiking, "
        f"{counts.neuron_updates_inactive:.4g} silent",
    ]
    if "input_token_spikes" in counts.extra:
        e = counts.extra
        slots = max(e["input_token_slots"], 1.0)
        lines.append(f"  input (TAS token spikes)        {e['input_token_spikes']:.4g} "
                     f"({e['tokens']:.3g} tokens x {slots / max(e['tokens'], 1.0):.3g} "
                     f"steps, density {e['input_token_spikes'] / slots:.3f})")
    lines.append(f"  energy on {profile.name}: {format_energy(snn_energy.total_pJ)} "
                 f"(synaptic {format_energy(snn_energy.synaptic_pJ)}, neuron updates "
                 f"{format_energy(snn_energy.total_pJ - snn_energy.synaptic_pJ)})")
    lines += [f"      {s}" for s in profile.sources()]
    for kind, other in snn_energy.fallback_parts.items():
        lines.append(f"      {kind}: {format_energy(snn_energy.parts_pJ[kind])} of it priced on "
                     f"{other}, as {profile.name} has no {kind} figure "
                     f"({snn_energy.priced_by[kind].costs[kind].source})")
    lines.append(f"      source: {profile.reference}")
    if profile.note:
        lines.append(f"      note: {profile.note}")
    snn_on_base = counts.energy(base_profile, fallback=mac_profile)
    lines.append(f"  synaptic energy on {base_profile.name}: "
                 f"{format_energy(snn_on_base.synaptic_pJ)} (SynOps x "
                 f"{base_profile.cost_pJ('ac'):g} pJ per accumulate"
                 + (f", MACs x {snn_on_base.priced_by['mac'].cost_pJ('mac'):g} pJ"
                    if counts.macs else "") + ")")
    for note in counts.notes:
        lines.append(f"  note: {note}")
    report = {"model": str(model), "source": source, "counts": counts.to_dict(),
              "energy": snn_energy.to_dict(), "snn_on_baseline_hardware": snn_on_base.to_dict(),
              "baselines": []}
    choice = args.baseline
    if choice == "auto":
        choice = hints.get("baseline", "all")
    names = ["resnet18-ecg", "bert-base-sst2"] if choice == "all" else \
        [] if choice == "none" else [choice]
    ecg_length = args.ecg_length or hints.get("ecg_length", 256)
    seq_len = args.seq_len or hints.get("seq_len", 32)
    if names:
        lines.append(f"ANN baselines, dense MACs on {base_profile.name} "
                     f"({base_profile.cost_pJ('mac'):g} pJ per MAC; {base_profile.reference}):")
    if "task" in hints and not any(BASELINE_TASKS[n] == hints["task"] for n in names) \
            and names:
        lines.append(f"  (no ANN baseline of this model's task, {hints['task']}: those below "
                     f"are for other tasks and are not compared)")
    for name in names:
        # the baseline's classifier head has as many classes as the SNN's when it is the same
        # task; otherwise its own task's count
        same_task = hints.get("task") == BASELINE_TASKS[name]
        base = ann_baseline(name, ecg_length=ecg_length, seq_len=seq_len,
                            n_classes=hints.get("n_classes") if same_task else None)
        e = base.energy(base_profile)
        comparable, why = baseline_comparison(name, hints, ecg_length, seq_len)
        ratio = None
        text = f"  {base.model}: {base.macs:.4g} MACs, {format_energy(e.total_pJ)}"
        if comparable is False:
            text += f"; {why}"
        else:
            ratio = e.total_pJ / snn_energy.total_pJ if snn_energy.total_pJ > 0 else float("inf")
            text += f" = {ratio:.3g} x the SNN's energy on {profile.name} ({why})"
        lines.append(text)
        report["baselines"].append({"name": name, "label": base.model, "macs": base.macs,
                                    "energy": e.to_dict(), "task": BASELINE_TASKS[name],
                                    "comparable": comparable, "comparison": why,
                                    "ratio_to_snn": ratio})
    print("\n".join(lines))
    if args.json:
        from evospike.atomic import atomic_path

        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    sys.stdout.flush()
    return 0
