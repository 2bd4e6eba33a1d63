"""Optimiser lab: plain loops on the product's own loss (``StyleTransfer.forward``),
scored by the harness's judge (``evaluation.scorer``) every ``--every`` loss evaluations, counting
evaluations (the reliable cost on a shared machine: a 256 px one costs the same in every method here).

    python scripts/optimizer_lab.py --weights ../shared/weights/vgg19_features_tvnorm.pth \
        --examples ../shared/examples --name lbfgs_colors80 --method lbfgs_recolor --steps 80

Fourth round (the new configs/quick.yaml): ``--name adam200 --method adam --steps 200 --every 20`` (the
reference), then e.g. ``--name half130d40 --method adam_recolor --steps 130 --kw '{"sched": "linear",
"floor": 0.1, "decay": 40, "strength": 0.5}'`` (half way to the painting's colours, the last 40 steps
decayed) and ``--kw '{"bf16": true}'`` for bf16 autocast.

Appends one JSON line per pair (its curve: evaluations, seconds, content, style) to ``--out``. Only
for choosing what to measure end to end with ``scripts/schedule_curves.py`` (real CLI runs, wall time);
docs/lab/quality.md quotes both. Not part of the product: it builds the module directly, without the Trainer.
"""
import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nst_lightning.evaluation.scorer import Scorer
from nst_lightning.inputs.images import decode_image
from nst_lightning.inputs.sources import read_source
from nst_lightning.model.module import StyleTransfer

ARGS = {"weights": None, "examples": None}
PAINTINGS = ["starry_night", "shipwreck", "the_scream", "woman-with-hat-matisse"]


@functools.lru_cache(maxsize=None)
def load(name, side):
    return decode_image(read_source(str(Path(ARGS["examples"]) / (name + ".jpg")), "image"), side, name, "image")

def make(side, painting, sw=10.0):
    m = StyleTransfer(weights=ARGS["weights"], style_weight=sw)
    m.compute_targets(load("tubingen", side), load(painting, side))
    m.vgg.use_channels_last(True)
    return m

EVALS = [0]
def loss_fn(m, x):
    EVALS[0] += 1
    return m(x)["loss"]

def run(method, steps, side, painting, every, scorer, **kw):
    torch.manual_seed(0)
    m = make(side, painting, kw.pop("sw", 10.0))
    photo = load("tubingen", side)
    big = load("tubingen", 256)
    x = photo.clone().requires_grad_(True)
    out, t = [], 0.0
    if method.__name__ in ("C2F", "AdamRecolor", "LBFGSRecolor") or kw.pop("colors", False): kw["painting"] = painting
    state = method(x, m, steps, **kw)
    EVALS[0] = 0
    for k in range(steps):
        t0 = time.perf_counter()
        state.step(k)
        t += time.perf_counter() - t0
        if (k + 1) % every == 0 or k + 1 == steps:
            r = state.result().detach().clamp(0, 1)
            out.append((EVALS[0], t, scorer.content_distance(r, big), scorer.style_distance(r, load(painting, None))))
    return out

class NormGrad(torch.autograd.Function):
    """jcjohnson/neural-style's -normalize_gradients: the gradient one loss term sends into the network,
    divided by its L1 norm, then multiplied by the term's weight (the weight sets its size, not the loss)."""
    @staticmethod
    def forward(ctx, x, weight):
        ctx.weight = weight
        return x.view_as(x)
    @staticmethod
    def backward(ctx, g): return g / (g.abs().sum() + 1e-8) * ctx.weight, None

def normalise_gradients(m):
    """Each tapped layer's loss branch through NormGrad (the network's own path keeps the plain gradient).
    Our taps are the terms' own (conv4_2 for content, the five style layers), so a tap is one term."""
    w = m.loss_weights
    weight = {n: w.content / len(w.content_layers) for n in w.content_layers}
    weight.update({n: w.style * share for n, share in w.style_layers.items()})
    forward = m.vgg.forward
    m.vgg.forward = lambda x: {k: NormGrad.apply(v, weight[k]) if k in weight else v for k, v in forward(x).items()}

class Adam:
    def __init__(self, x, m, steps, lr=0.02, sched="constant", floor=0.05, betas=(0.9, 0.999), warm=0, ema=None, bf16=False, decay=None,
                 normgrad=False):
        self.x, self.m, self.steps, self.bf16, self.decay = x, m, steps, bf16, decay
        if normgrad: normalise_gradients(m)
        self.opt = torch.optim.Adam([x], lr=lr, betas=betas)
        self.lr, self.sched, self.floor, self.warm = lr, sched, floor, warm
        self.ema, self.avg = ema, None
    def factor(self, k):
        if k < self.warm: return (k + 1) / (self.warm + 1)
        if self.decay:  # warm-up, stable, decay: constant, then the schedule over the last `decay` steps
            p = max(k - (self.steps - self.decay), 0) / self.decay
        else:
            p = (k - self.warm) / max(self.steps - self.warm, 1)
        if self.sched == "constant": return 1
        if self.sched == "cosine": return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * p))
        if self.sched == "linear": return self.floor + (1 - self.floor) * (1 - p)
    def step(self, k):
        for g in self.opt.param_groups: g["lr"] = self.lr * self.factor(k)
        self.opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = loss_fn(self.m, self.x)
        loss.backward(); self.opt.step()
        with torch.no_grad():
            self.x.clamp_(0, 1)
            if self.ema:
                self.avg = self.x.detach().clone() if self.avg is None else self.avg.mul_(self.ema).add_(self.x.detach(), alpha=1 - self.ema)
    def result(self):
        return self.avg if self.avg is not None else self.x

class LBFGS:
    def __init__(self, x, m, steps, lr=1.0, hist=100, ls=None, max_iter=1, bf16=False):
        self.x, self.m, self.bf16 = x, m, bf16
        self.opt = torch.optim.LBFGS([x], lr=lr, max_iter=max_iter, history_size=hist, line_search_fn=ls, tolerance_grad=0, tolerance_change=0)
    def step(self, k):
        def closure():
            self.opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                loss = loss_fn(self.m, self.x)
            loss.backward()
            return loss
        self.opt.step(closure)
    def result(self):
        return self.x

class AdamThenLBFGS:
    def __init__(self, x, m, steps, switch=40, lr=0.02, sched="constant", hist=100, painting=None):
        if painting is not None:  # from the painting's colours
            from nst_lightning.inputs.color import match_color_histogram
            with torch.no_grad():
                x.copy_(match_color_histogram(x.detach(), load(painting, 256)).clamp(0, 1))
        self.a = Adam(x, m, switch, lr=lr, sched=sched)
        self.l = LBFGS(x, m, steps - switch, hist=hist)
        self.switch = switch
    def step(self, k):
        if k < self.switch: self.a.step(k)
        else: self.l.step(k)
    def result(self): return self.a.x

METHODS = {"adam": Adam, "lbfgs": LBFGS, "adam_lbfgs": AdamThenLBFGS}


class C2F:
    """Adam over stages [(side, steps)], moments carried as the product does; detail: add the photo's
    high-pass at each upscale; lrs: per-stage lr."""
    def __init__(self, x, m, steps, stages=((181, 100), (256, 35)), lr=0.02, detail=False, painting=None, sched="constant", floor=0.05, fresh=False, bf16=False):
        self.stages, self.lr, self.detail, self.painting, self.sched, self.floor, self.fresh = stages, lr, detail, painting, sched, floor, fresh
        self.bf16 = bf16
        self.bounds = []
        end = 0
        for side, n in stages:
            end += n; self.bounds.append(end)
        self.total = end
        self.stage = 0
        self.x = load("tubingen", stages[0][0]).clone().requires_grad_(True)
        self.m = make(stages[0][0], painting)
        self.opt = torch.optim.Adam([self.x], lr=lr)
    def step(self, k):
        if k >= self.bounds[self.stage]:
            self.stage += 1
            side = self.stages[self.stage][0]
            prev = self.stages[self.stage - 1][0]
            photo = load("tubingen", side)
            size = tuple(photo.shape[-2:])
            with torch.no_grad():
                up = F.interpolate(self.x.detach(), size=size, mode="bicubic", align_corners=False)
                if self.detail:
                    up = up + photo - F.interpolate(load("tubingen", prev), size=size, mode="bicubic", align_corners=False)
                up = up.clamp(0, 1)
            ratio = (size[0] * size[1]) / (self.x.shape[-2] * self.x.shape[-1])
            old = self.opt.state[self.x]
            newx = up.clone().requires_grad_(True)
            opt = torch.optim.Adam([newx], lr=self.lr)
            if not self.fresh:
                opt.state[newx] = {"step": old["step"],
                    "exp_avg": F.interpolate(old["exp_avg"], size=size, mode="bicubic", align_corners=False) / ratio,
                    "exp_avg_sq": F.interpolate(old["exp_avg_sq"], size=size, mode="bilinear", align_corners=False).clamp_min(0) / ratio**2}
            self.x, self.opt = newx, opt
            self.m = make(side, self.painting)
        p = k / self.total
        f = 1 if self.sched == "constant" else self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * p))
        for g in self.opt.param_groups: g["lr"] = self.lr * f
        self.opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = loss_fn(self.m, self.x)
        loss.backward(); self.opt.step()
        with torch.no_grad(): self.x.clamp_(0, 1)
    def result(self):
        if self.x.shape[-1] != 256:
            return F.interpolate(self.x.detach(), size=(192, 256), mode="bicubic", align_corners=False)
        return self.x
METHODS["c2f"] = C2F


class AdamRecolor(Adam):
    """Adam from the photo recoloured to the painting's colour mean and covariance."""
    def __init__(self, x, m, steps, painting=None, strength=1.0, **kw):
        from nst_lightning.inputs.color import match_color_histogram
        with torch.no_grad():
            recoloured = match_color_histogram(x.detach(), load(painting, 256)).clamp(0, 1)
            x.copy_(x.detach() + strength * (recoloured - x.detach()))  # strength 1: the painting's colours
        super().__init__(x, m, steps, **kw)
METHODS["adam_recolor"] = AdamRecolor


def match_quantiles(x, target):
    """Each channel of ``x`` given ``target``'s channel's distribution (its quantiles), ranks kept."""
    out = x.clone()
    for c in range(3):
        src = x[0, c].flatten()
        q = torch.quantile(target[0, c].flatten(), torch.linspace(0, 1, src.numel()))
        flat = torch.empty_like(src)
        flat[src.argsort()] = q
        out[0, c] = flat.view_as(x[0, c])
    return out


class LBFGSRecolor(LBFGS):
    def __init__(self, x, m, steps, painting=None, quantiles=False, **kw):
        from nst_lightning.inputs.color import match_color_histogram
        with torch.no_grad():
            start = match_color_histogram(x.detach(), load(painting, 256)).clamp(0, 1)
            if quantiles:
                start = match_quantiles(start, load(painting, 256))
            x.copy_(start)
        super().__init__(x, m, steps, **kw)
METHODS["lbfgs_recolor"] = LBFGSRecolor

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--method", default="adam")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--kw", default="{}")
    ap.add_argument("--pairs", default=",".join(PAINTINGS))
    ap.add_argument("--weights", required=True)
    ap.add_argument("--examples", required=True)
    ap.add_argument("--out", default="optimizer_lab.jsonl")
    a = ap.parse_args()
    ARGS.update(weights=a.weights, examples=a.examples)
    scorer = Scorer(a.weights)
    for p in a.pairs.split(","):
        res = run(METHODS[a.method], a.steps, a.side, p, a.every, scorer, **json.loads(a.kw))
        with open(a.out, "a") as f:
            f.write(json.dumps({"name": a.name, "pair": p, "curve": res}) + "\n")
        k, t, c, s = res[-1]
        print(f"{a.name:30s} {p:24s} steps {k} t {t:6.1f} c {c:.4f} s {s:.4f}", flush=True)
