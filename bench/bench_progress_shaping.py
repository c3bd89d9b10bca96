"""PPO on pick_place with the sparse reward: sparse vs progress shaping vs raw progress delta.

Usage::

    python bench/bench_progress_shaping.py                      # 1M steps, seeds 0 1 2, 2 jobs
    python bench/bench_progress_shaping.py --timesteps 100000 --seeds 0 --jobs 1

Steps: collect 50 scripted-expert demos plus 50 successful ones per action-noise level
(0.5, 1.0) and 150 noisy expert rollouts of any outcome (noise 1.0 and 2.0), train a
progress model with the default settings (VOC and stage accuracy on 20
separate clean demos, and accuracy off the demos reported), then train PPO on
``pick_place`` with ``reward_type=sparse`` under each condition and seed (one
``python train.py`` process each, ``torch_threads=1``, ``--jobs`` at a time; a run
whose ``summary.json`` exists is reused). Conditions:

* ``sparse``: the env's sparse reward (1 at success);
* ``shaping``: the sparse reward + ``shaping=progress`` (``Phi = progress - 1``);
* ``delta``: ``reward=progress_delta`` (raw ``progress(s') - progress(s)``, comparison only);
* ``progress``: ``reward=progress`` (model success bonus + progress shaping, no env reward);
* ``level``: ``reward=progress_level`` (``progress(s') - 1`` per step, the form of the env's
  dense reward with the learned progress; comparison only);
* ``stage``: ``shaping`` with the stage of each state read from the env's ``info["stage"]``
  (``shaping.potential.stage_key=stage``), the model giving only the within-stage progress;
* ``stage_online``: ``stage`` with the model refined online as in ``online``;
* ``oracle``: the sparse reward + shaping with the env's own true progress as the potential
  (``shaping=function``, :func:`rewardlearn_envs.pick_place.state_progress`, offset 1): the
  best potential there is, to separate the potential's quality from the method's reach;
* ``dense``: the env's hand-written staged reward (reference, not learned);
* ``drs``: ``reward=drs`` with the same 50 clean demos (:mod:`rewardlearn.drs`: stage index +
  a per-stage classifier score refined online on the agent's own rollouts; the env's reward
  is not read, only its ``info["stage"]``/``is_success``);
* ``perceptual``: ``reward=perceptual`` fitted on the same demos (state features), no
  env reward (issue #5's PPO comparison);
* ``perceptual_add``: the sparse env reward plus ``reward=perceptual`` (``reward.mode=add``);
* ``perceptual_shaping``: the sparse env reward + ``shaping=perceptual`` (the perceptual
  score of the same demos, state features, as the potential);
* ``adapted`` (with ``--bc``): ``shaping=progress`` with a model trained on the same data
  plus 100 rollouts of the seed-0 cloned policy (``collect policy=``, stages from
  ``info``, other reset seeds than any evaluation), Robo-Dopamine's adaptation step;
* ``online`` (with ``--bc``): ``shaping=progress`` with the same model refined online on the
  policy's own rollouts (``shaping.potential.online.enabled=true``, the model's demo sets kept
  in every batch, labels from the env's stage/success signals only;
  :mod:`rewardlearn.progress.online`);
* ``perceptual_gated``: the same with ``settings.aggregate=gated`` (the score times the
  best step's match, ~0 away from the demos);
* ``perceptual_shaping_k5``: ``perceptual_shaping`` with 5 steps instead of the automatic k;
* ``perceptual_shaping_uncapped``, ``perceptual_gated_uncapped``: the same without the
  per-feature deviation cap (``settings.max_deviation=null``, the model before the cap).

``--bc`` starts every condition from the same behaviour-cloned policy (``bc.demos=`` the 50
clean expert demos, :mod:`rewardlearn.bc`), the setting of Robo-Dopamine, whose shaping
fine-tunes a pretrained policy; the policy right after cloning is evaluated too
(``total_timesteps=0``). Its runs go to ``t<steps>_bc`` and their own table section.

``--existing`` reports only the runs already in ``--work`` (to build one table from
runs made by several invocations).

Reported: evaluation success rate (deterministic policy, 50 held-out seeds), the
training success rate over the last 100 episodes, and the env steps to the first
successful training episode (from SB3's ``rollout/success_rate``, so to the rollout:
``n_envs * n_steps`` = 2048 steps). Writes ``bench/results/progress_shaping.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from _common import git_commit, training_curve  # bench/ is on sys.path when a script runs
from _pick_place import (
    PPO,
    fmt_steps,
    pick_place_run,
    prepare_model,
    stages_reached,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

"""PPO: the recommended settings of conf/env/pick_place.yaml (n_steps 256, batch 256, 10 epochs,
lr 3e-4, gae_lambda 0.95, ent_coef 0.01, 256x256 nets, normalised observations, gamma 0.99)."""

CONDITIONS: dict[str, list[str]] = {
    "sparse": ["env.kwargs.reward_type=sparse", "reward=env"],
    "shaping": ["env.kwargs.reward_type=sparse", "reward=env", "shaping=progress",
                "shaping.potential.path={model}"],
    "stage": ["env.kwargs.reward_type=sparse", "reward=env", "shaping=progress",
              "shaping.potential.path={model}", "shaping.potential.stage_key=stage"],
    "stage_online": ["env.kwargs.reward_type=sparse", "reward=env", "shaping=progress",
                     "shaping.potential.path={model}", "shaping.potential.stage_key=stage",
                     "shaping.potential.online.enabled=true",
                     "shaping.potential.online.demos='{demo_sets}'"],
    "delta": ["env.kwargs.reward_type=sparse", "reward=progress_delta",
              "reward.model.path={model}"],
    "progress": ["env.kwargs.reward_type=sparse", "reward=progress", "reward.model.path={model}"],
    "level": ["env.kwargs.reward_type=sparse", "reward=progress_level",
              "reward.model.path={model}"],
    "oracle": ["env.kwargs.reward_type=sparse", "reward=env", "shaping=function",
               "shaping.potential.function=rewardlearn_envs.pick_place:state_progress",
               "shaping.potential.offset=1"],
    "dense": ["env.kwargs.reward_type=dense", "reward=env"],
    "drs": ["env.kwargs.reward_type=sparse", "reward=drs", "reward.model.demos={demos}"],
    "perceptual": ["env.kwargs.reward_type=sparse", "reward=perceptual",
                   "reward.model.demos={demos}", "reward.model.encoder.target=state"],
    "perceptual_add": ["env.kwargs.reward_type=sparse", "reward=perceptual", "reward.mode=add",
                       "reward.model.demos={demos}", "reward.model.encoder.target=state"],
    "perceptual_shaping": ["env.kwargs.reward_type=sparse", "reward=env", "shaping=perceptual",
                           "shaping.potential.demos={demos}",
                           "shaping.potential.encoder.target=state"],
    "adapted": ["env.kwargs.reward_type=sparse", "reward=env", "shaping=progress",
                "shaping.potential.path={adapted}"],
    "online": ["env.kwargs.reward_type=sparse", "reward=env", "shaping=progress",
               "shaping.potential.path={model}", "shaping.potential.online.enabled=true",
               "shaping.potential.online.demos='{demo_sets}'"],
    "perceptual_gated": ["env.kwargs.reward_type=sparse", "reward=env", "shaping=perceptual",
                         "shaping.potential.demos={demos}",
                         "shaping.potential.encoder.target=state",
                         "+shaping.potential.settings.aggregate=gated"],
    "perceptual_shaping_k5": ["env.kwargs.reward_type=sparse", "reward=env", "shaping=perceptual",
                              "shaping.potential.demos={demos}",
                              "shaping.potential.encoder.target=state",
                              "shaping.potential.settings.n_steps=5"],
    "perceptual_shaping_uncapped": ["env.kwargs.reward_type=sparse", "reward=env",
                                    "shaping=perceptual", "shaping.potential.demos={demos}",
                                    "shaping.potential.encoder.target=state",
                                    "shaping.potential.settings.max_deviation=null"],
    "perceptual_gated_uncapped": ["env.kwargs.reward_type=sparse", "reward=env",
                                  "shaping=perceptual", "shaping.potential.demos={demos}",
                                  "shaping.potential.encoder.target=state",
                                  "+shaping.potential.settings.aggregate=gated",
                                  "shaping.potential.settings.max_deviation=null"],
}
DEFAULT = ["sparse", "shaping", "oracle", "progress", "delta", "level", "dense",
           "perceptual_add"]
LABELS = {
    "sparse": "sparse env reward",
    "shaping": "sparse env reward + `shaping=progress`",
    "stage": "sparse env reward + `shaping=progress` with the env's stage "
             "(`shaping.potential.stage_key=stage`: the model gives the within-stage progress)",
    "stage_online": "sparse env reward + `shaping=progress` with the env's stage, model refined "
                    "online (`stage_key=stage`, `online.enabled=true`)",
    "delta": "raw progress delta (`reward=progress_delta`)",
    "progress": "`reward=progress` (model success bonus + progress shaping, no env reward)",
    "level": "predicted progress - 1 per step (`reward=progress_level`, comparison only)",
    "oracle": "sparse env reward + shaping with the env's true progress (`shaping=function`, "
              "oracle potential)",
    "dense": "env's hand-written dense reward (reference)",
    "drs": "`reward=drs` (DrS: stage index + learned per-stage score, trained online on the "
           "agent's successes and failures; same demos + the env's stage signal)",
    "perceptual": "`reward=perceptual` (Sermanet et al., state features, same demos, no env "
                  "reward)",
    "perceptual_add": "sparse env reward + `reward=perceptual` (`reward.mode=add`, state features)",
    "perceptual_shaping": "sparse env reward + `shaping=perceptual` (Sermanet potential, state "
                          "features, same demos)",
    "perceptual_gated": "sparse env reward + `shaping=perceptual` with `aggregate=gated` (~0 "
                        "off the demos)",
    "adapted": "sparse env reward + `shaping=progress`, model adapted to the cloned policy's "
               "rollouts",
    "online": "sparse env reward + `shaping=progress`, model refined online on the policy's "
              "rollouts (`shaping.potential.online.enabled=true`)",
    "perceptual_shaping_k5": "sparse env reward + `shaping=perceptual` with 5 steps "
                             "(`settings.n_steps=5`; auto picks 7)",
    "perceptual_shaping_uncapped": "sparse env reward + `shaping=perceptual` without the "
                                   "deviation cap (`max_deviation=null`, the model before the fix)",
    "perceptual_gated_uncapped": "sparse env reward + `shaping=perceptual` with `aggregate=gated`, "
                                 "without the deviation cap (`max_deviation=null`)",
}


def prepare_adapted(base: Path, work: Path, policy_run: Path) -> Path:
    """The progress model adapted to a cloned policy: the model's data plus 100 rollouts of
    the policy in ``policy_run`` (stochastic, any outcome, stages from ``info``)."""
    from rewardlearn.cli.collect import CollectConfig, collect
    from rewardlearn.cli.train_progress import cmd_train

    out = work / "adapted" / "progress_model.pt"
    if out.is_file():
        return out
    rollouts = work / "adapted" / "policy-rollouts"
    if not rollouts.exists():
        collect(CollectConfig(env="pick_place", policy=str(policy_run / "agent.zip"),
                              n_episodes=100, seed=30_000, only_success=False, out=str(rollouts),
                              dataset_id="rewardlearn/pick_place/cloned-policy-v0"),
                verbose=False)
    sets = (base / "demo_sets.txt").read_text()
    cmd_train({"demos": f"{sets},{rollouts}", "env": "pick_place", "out": str(out)})
    return out


BC = ["bc.demos={demos}"]
"""``--bc``: clone the 50 clean expert demos before RL (defaults of ``conf/config.yaml``'s
``bc`` block: 50 epochs, log-std -1, VecNormalize statistics fixed at the demos')."""


def run_one(cond: str, seed: int, timesteps: int, model: Path, work: Path,
            bc: bool = False) -> dict[str, Any]:
    """One ``train.py`` run; returns its summary plus training-curve figures."""
    run_dir = work / "runs" / f"{cond}_s{seed}"
    sets = model.parent / "demo_sets.txt"
    overrides = [o.format(model=model, demos=model.parent / "demos",
                          adapted=work / "adapted" / "progress_model.pt",
                          demo_sets=sets.read_text().strip() if sets.is_file() else "")
                 for o in CONDITIONS[cond] + (BC if bc else [])]
    summary = pick_place_run(run_dir, [*overrides, f"total_timesteps={timesteps}",
                                       f"seed={seed}"], work / "logs" / f"{cond}_s{seed}.log")
    if timesteps > 0:
        summary.update(training_curve(run_dir))
    summary.update(stages_reached(run_dir))
    return summary


def _model_line(report: dict[str, Any]) -> str:
    """The progress model's data and accuracy, for the report."""
    cfg, held = report["config"], report["heldout"]
    demos = report.get("demo_counts", {"expert": 50})
    text = (f"Progress model: {' + '.join(f'{n} {k}' for k, n in demos.items())} demos "
            f"(80/20 train/held-out split), default settings (labels "
            f"{cfg.get('labels', 'spans')}, window "
            f"{cfg['window']}, stride {cfg['stride']}, {cfg['epochs']} epochs, rewind "
            f"augmentation), trained in {report['train_s']:.0f} s; stage priors "
            f"{report['alpha']}. Held-out split: VOC {held['voc']:.4f} (min "
            f"{held['voc_min']:.4f}), stage accuracy {held['stage_acc']:.1%}")
    clean, off = report.get("clean_eval"), report.get("off_manifold")
    if clean:
        text += (f". On {clean['episodes']} separate clean expert demos: **VOC "
                 f"{clean['voc']:.4f}** (min {clean['voc_min']:.4f}), **stage accuracy "
                 f"{clean['stage_acc']:.1%}**, progress MAE {clean['progress_mae']:.4f}")
    if off:
        text += (f". Off the demos ({off['steps']} steps of the expert with action noise "
                 f"{off['noise']}): Spearman of predicted vs true progress "
                 f"{off['spearman']:.3f}, stage accuracy {off['stage_acc']:.1%}")
    return text + "."


def write_report(out: Path, results: dict[str, list[dict[str, Any]]], report: dict[str, Any],
                 args: argparse.Namespace, bc_only: list[dict[str, Any]] | None = None) -> None:
    import torch

    jobs = [r for rs in results.values() for r in rs]
    commit = git_commit()
    start = ("PPO from a behaviour-cloned policy (`--bc`: `bc.demos=` the 50 clean expert "
             "demos)" if args.bc else "PPO from scratch")
    lines = [
        f"## Progress shaping on pick_place (sparse reward), {start}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), torch "
        f"{torch.__version__} CPU; commit {commit}; command: `python "
        f"bench/bench_progress_shaping.py --timesteps {args.timesteps} --seeds "
        f"{' '.join(map(str, args.seeds))} --jobs {args.jobs}"
        f"{' --conditions ' + ' '.join(args.conditions) if args.conditions != DEFAULT else ''}"
        f"{' --bc' if args.bc else ''}{' --existing' if args.existing else ''}`; "
        f"{len(jobs)} runs, {sum(r['wall_s'] for rs in results.values() for r in rs) / 60:.0f} "
        f"min of run time ({args.jobs} at a time).",
        "",
        _model_line(report),
        "",
        f"PPO: `{' '.join(PPO)}` with the settings of `conf/env/pick_place.yaml` (n_steps "
        f"256, batch 256, 10 epochs, lr 3e-4, gae_lambda 0.95, ent_coef 0.01, 256x256 nets, "
        f"normalised observations, gamma 0.99), {args.timesteps} env steps per run, "
        f"seeds {', '.join(map(str, args.seeds))}. Eval: deterministic policy, 50 held-out "
        "seeds. Training success: last 100 training episodes. First success: env steps to "
        "the first successful training episode (to the 2048-step rollout).",
        "",
        "| reward | seeds | eval success per seed | eval success mean | training success (last "
        "100 ep.) | steps to first success | steps to 50% training success | eval episodes "
        "reaching grasp / transport / place | p vs sparse |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if bc_only:
        far = np.concatenate([r["furthest_stage"] for r in bc_only])
        rates = ", ".join(f"{r['success_rate']:.0%}" for r in bc_only)
        seeds = ", ".join(str(r["seed"]) for r in bc_only)
        reach = " / ".join(f"{np.mean(far >= k):.0%}" for k in (1, 2, 3))
        lines.insert(-2, f"Cloned policy before RL (`total_timesteps=0`): eval success {rates} "
                     f"(seeds {seeds}); reaching grasp / transport / place {reach}. "
                     "Training-time actions are Gaussian around the cloned mean (std "
                     "e^-1 = 0.37).\n")
    for cond, runs in results.items():
        succ = [r["success_rate"] for r in runs]
        train = [r["train_success_final"] or 0.0 for r in runs]
        far = np.concatenate([r["furthest_stage"] for r in runs])
        reach = " / ".join(f"{np.mean(far >= k):.0%}" for k in (1, 2, 3))
        lines.append(
            f"| {LABELS[cond]} | {', '.join(str(r['seed']) for r in runs)} | "
            f"{', '.join(f'{s:.0%}' for s in succ)} | "
            f"**{np.mean(succ):.0%}** | {np.mean(train):.0%} | "
            f"{fmt_steps([r['first_success_step'] for r in runs])} | "
            f"{fmt_steps([r.get('half_success_step') for r in runs])} | {reach} | "
            f"{_vs_sparse(runs, results.get('sparse', []))} |")
    lines += ["", "Stages reached: furthest stage of 20 deterministic evaluation episodes per seed "
              "(`info[\"stage\"]`: 1 grasp, 2 transport, 3 place). p vs sparse: one-sided "
              "Mann-Whitney U (scipy, `alternative='greater'`) of the per-seed eval success "
              "rates against the sparse row's on the same seeds."]
    replace_section(out, f"t{args.timesteps}{'_bc' if args.bc else ''}", "\n".join(lines))


def _vs_sparse(runs: list[dict[str, Any]], sparse: list[dict[str, Any]]) -> str:
    """One-sided Mann-Whitney U p-value that this condition's per-seed eval success exceeds
    the sparse reward's, on the seeds both have ('-' for the sparse row or fewer than 3)."""
    from scipy.stats import mannwhitneyu

    base = {r["seed"]: r["success_rate"] for r in sparse}
    pairs = [(r["success_rate"], base[r["seed"]]) for r in runs if r["seed"] in base]
    if runs is sparse or len(pairs) < 3:
        return "-"
    p = mannwhitneyu([a for a, _ in pairs], [b for _, b in pairs],
                     alternative="greater").pvalue
    return f"{p:.2g} (n={len(pairs)})"


def _section_order(marker: str) -> float:
    """Step-budget sections in order, hand-written ones (``<!-- section notes -->``) last."""
    key = marker.split()[2]
    steps, _, bc = key[1:].partition("_")
    if key[:1] == "t" and steps.isdigit():
        return float(steps) + (0.5 if bc else 0.0)
    return float("inf")


def replace_section(out: Path, key: str, text: str) -> None:
    """Put ``text`` in ``out`` as the section ``key`` (one section per step budget)."""
    marker = f"<!-- section {key} -->"
    sections: dict[str, str] = {}
    if out.is_file():
        current = None
        for line in out.read_text().splitlines():
            if line.startswith("<!-- section ") and line.endswith(" -->"):
                current = line
                sections[current] = ""
            elif current is not None:
                sections[current] += line + "\n"
    sections[marker] = text.rstrip() + "\n\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    order = sorted(sections, key=_section_order)
    out.write_text("".join(f"{m}\n{sections[m]}" for m in order).rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--conditions", nargs="+", choices=list(CONDITIONS),
                        default=DEFAULT)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "_work" / "progress_shaping")
    parser.add_argument("--bc", action="store_true",
                        help="start every run from the policy cloned from the expert demos")
    parser.add_argument("--skip-clone-eval", action="store_true",
                        help="with --bc: do not evaluate the cloned policy before RL "
                             "(train.py now refuses total_timesteps=0)")
    parser.add_argument("--existing", action="store_true",
                        help="report only the (condition, seed) runs already in --work")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                        "progress_shaping.md")
    args = parser.parse_args()
    work = args.work / f"t{args.timesteps}{'_bc' if args.bc else ''}"
    work.mkdir(parents=True, exist_ok=True)
    model, report = prepare_model(args.work)
    print(f"progress model: held-out VOC {report['heldout']['voc']:.4f}, stage accuracy "
          f"{report['heldout']['stage_acc']:.1%}")
    # seed-major: a sweep stopped early still has every condition on the same seeds
    jobs = [(c, s) for s in args.seeds for c in args.conditions]
    if args.existing:
        jobs = [(c, s) for c, s in jobs
                if (work / "runs" / f"{c}_s{s}" / "summary.json").is_file()]
    if "adapted" in args.conditions and not args.bc:
        parser.error("--conditions adapted needs --bc (it adapts to the cloned policy)")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        before_rl = [pool.submit(run_one, "sparse", s, 0, model, work / "bc_only", True)
                     for s in args.seeds] if args.bc and not args.skip_clone_eval else []
        bc_only = [f.result() for f in before_rl]
        if "adapted" in args.conditions and not args.existing:
            prepare_adapted(args.work, work, work / "bc_only" / "runs" / f"sparse_s{args.seeds[0]}")
        futures = {pool.submit(run_one, *job, args.timesteps, model, work, args.bc): job
                    for job in jobs}
        done: dict[tuple[str, int], dict[str, Any]] = {}
        for fut in as_completed(futures):
            cond, seed = futures[fut]
            done[cond, seed] = summary = fut.result()
            print(f"{cond} seed {seed}: eval success {summary['success_rate']:.0%}, first "
                  f"training success at {summary['first_success_step']}", flush=True)
            # the table after every run, conditions and seeds in the order asked
            results = {c: [done[c, s] for s in args.seeds if (c, s) in done]
                       for c in args.conditions if any((c, s) in done for s in args.seeds)}
            write_report(args.out, results, report, args, bc_only)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
