"""Figures of a trained VAE, one function per kind, resolved by name through :data:`PLOTS`.

Image grids (``recon``, ``samples``, ``manifold``, ``interp``) are laid out as
torchvision's ``make_grid`` lays them out (:func:`image_grid`): ``B`` images of ``H x W``
pixels in ``nrow`` columns make a grid of ``rows * (H + PADDING) + PADDING`` by
``cols * (W + PADDING) + PADDING`` pixels. :func:`grid_figure` shows it under a
title, with its rows named where they differ (inputs and reconstructions, the
two interpolation paths, classes), scaled up by a whole number of screen pixels
per image pixel until it is at least ``MIN_GRID_WIDTH`` wide. Every image is a
decoded *mean* (the likelihood's mean, e.g. Bernoulli probabilities), not a
sample. The other kinds are matplotlib figures of ``FIGSIZES[kind]`` inches at
``DPI``. Labels are shown by their dataset's class names (``Trouser`` rather
than ``1`` for Fashion-MNIST) where the data have them.

``plot(source, kind)`` draws one kind for a run folder or an in-memory VAE;
``write_figures(run)`` draws every kind that applies into the run folder,
as ``<kind>.png``. Figures draw on their own RNG stream (the run's seed), so
they are reproducible and leave the global stream alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import matplotlib.ticker
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure  # drawn without pyplot: no backend chosen, no global figure state
from torch.distributions import Independent, Normal

from .checkpoint import atomic_write
from .data import Dataset, validate_labels
from .diagnostics import active_units, kl_per_dimension
from .errors import PyroVAEError
from .evaluate import seeded
from .registry import Registry
from .runs import RunFolder, load_run
from .summaries import mean_image, posterior_point

#: Pixels between the images of a grid (torchvision's default).
PADDING = 2
#: Images per row of the ``recon`` and ``samples`` grids; ``recon`` shows two rows of pairs.
COLUMNS = 8
#: Side of the ``manifold`` grid (the paper's Figure 4 uses a grid of this kind).
MANIFOLD_SIDE = 20
#: Points on each interpolation path, both ends included.
INTERP_STEPS = 10
#: Test points in the ``latent`` scatter (all of them up to this many).
LATENT_POINTS = 2000
#: Figure sizes in inches of the matplotlib kinds; the PNG is ``size * DPI`` pixels.
FIGSIZES = {"latent": (6.0, 5.0), "kl": (7.0, 4.0), "curves": (12.0, 3.6)}
DPI = 100
#: Smallest width in pixels of an image grid's picture; smaller grids are scaled up by a whole number.
MIN_GRID_WIDTH = 600
#: Pixels above a grid for its title, and per character of the longest row or column name.
TITLE_PIXELS, LABEL_PIXELS_PER_CHAR = 34, 7


@dataclass
class PlotData:
    """What the figures draw on: a trained VAE, test rows with their labels, and the run's records."""

    vae: Any
    x: torch.Tensor
    labels: Optional[torch.Tensor] = None
    image_shape: Optional[Tuple[int, int]] = None
    metrics: List[Dict[str, Any]] = field(default_factory=list)
    config: Dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    #: ``class_names[c]`` names label ``c`` in the figures (default: the number itself).
    class_names: Optional[Sequence[str]] = None

    def class_name(self, label: int) -> str:
        """The name of class ``label``: the dataset's where it has names, else the number."""
        return class_name(self.class_names, label)


def class_name(names: Optional[Sequence[str]], label: int) -> str:
    """``names[label]`` where ``names`` has it (a dataset's ``class_names``), else the number itself."""
    return str(names[label]) if names is not None and 0 <= label < len(names) else str(label)


@dataclass(frozen=True)
class PlotKind:
    """A registered figure kind.

    :param name: registry name and file stem (``<name>.png``).
    :param draw: ``draw(data, path)`` writes the PNG.
    :param description: one line, used in ``report.md`` and ``--help``.
    :param unavailable: ``unavailable(data)`` is why the kind cannot be drawn for this run, or None.
    :param images: for image grids, ``images(data) -> (images (B, x_dim), nrow)``: the bare grid
        (what :func:`grid_tensor` and TensorBoard show; the PNG adds a title and row names).
    :param figure: ``figure(data)`` returns the drawing as a :class:`matplotlib.figure.Figure`
        (what :func:`figure` shows in a notebook).
    """

    name: str
    draw: Callable[[PlotData, Path], None]
    description: str
    unavailable: Callable[[PlotData], Optional[str]]
    images: Optional[Callable[[PlotData], Tuple[torch.Tensor, int]]] = None
    figure: Optional[Callable[[PlotData], Figure]] = None


PLOTS: Registry[PlotKind] = Registry("figure kind")
"""Figure kind name (``pyrovae plot --kind``) -> :class:`PlotKind`; each kind writes ``<name>.png``."""


def _needs_images(data: PlotData) -> Optional[str]:
    return None if data.image_shape else "the data are not images (no height x width recorded)"


#: ``title(data)`` of an image-grid kind, or ``rows(data)``: a name per grid row (or None).
GridText = Callable[[PlotData], Any]


def register_grid(name: str, description: str, unavailable: Callable[[PlotData], Optional[str]] = _needs_images,
                  *, title: Optional[GridText] = None, rows: Optional[GridText] = None):
    """Decorator registering ``images(data) -> (images, nrow)`` as an image-grid kind.

    ``title(data)`` is the line above the grid (default: the description) and ``rows(data)``
    names each row of the grid (default: no names); see :func:`grid_figure`.
    """
    def wrap(images):
        def make(data: PlotData) -> Figure:
            text = title(data) if title is not None else description[0].upper() + description[1:]
            return grid_figure(*images(data), data.image_shape, text, rows(data) if rows is not None else None)

        PLOTS.register(name, PlotKind(name, lambda data, path: save_figure(make(data), path), description,
                                      unavailable, images, make))
        return images
    return wrap


def register_figure(name: str, description: str, unavailable: Callable[[PlotData], Optional[str]]):
    """Decorator registering ``draw(data, fig) -> None`` as a matplotlib kind of size ``FIGSIZES[name]``."""
    def wrap(draw):
        def make(data: PlotData) -> Figure:
            fig = Figure(figsize=FIGSIZES[name], dpi=DPI)
            draw(data, fig)
            fig.tight_layout()
            return fig

        PLOTS.register(name, PlotKind(name, lambda data, path: save_figure(make(data), path), description,
                                      unavailable, figure=make))
        return draw
    return wrap


# -- decoding helpers ----------------------------------------------------------------------


@torch.no_grad()
def latent_codes(vae, x: torch.Tensor, labels: Optional[torch.Tensor] = None, draws: int = 64) -> torch.Tensor:
    """One code per row: the posterior mean of ``q(z|x)``, or its median where the mean is undefined.

    See :func:`pyrovae.summaries.posterior_point`; call it on a seeded stream where the median
    comes from ``draws`` samples (a flow), for a reproducible code.
    """
    return posterior_point(vae.encode_top(x, labels), draws)  # the top layer's codes (VAE.encode_top)


def reconstruct(vae, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean images ``E[x | z = code(x)]``: each row decoded from its posterior code (:meth:`VAE.reconstruct`)."""
    return vae.reconstruct(x, labels)


def _lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (1 - t) * a + t * b


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for VAE latents), linear when a, b are parallel."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(torch.sin(omega)) < 1e-6:
        return _lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


#: Interpolation paths between two codes, by name.
PATHS: Registry[Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("interpolation")
PATHS.register("linear", _lerp)
PATHS.register("spherical", _slerp)


@torch.no_grad()
def interpolate(vae, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = INTERP_STEPS, path: str = "linear",
                label: Optional[int] = None) -> torch.Tensor:
    """Mean images decoded along the ``path`` (``linear`` or ``spherical``) from code(x_a) to code(x_b).

    ``steps`` points, both ends included: the first decoding is the reconstruction of ``x_a``,
    the last that of ``x_b``. ``label`` is the class a CVAE encodes and decodes with.
    """
    y = None if label is None else torch.full((2,), label, device=x_a.device)
    a, b = latent_codes(vae, torch.stack([x_a, x_b]), y)
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device)[:, None]
    z = PATHS[path](a, b, t)
    return mean_image(vae.decode_top(z, None if y is None else y[:1].expand(steps)))


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    """Pixel values for display: kept where they lie in [0, 1], else min-max scaled over the whole grid."""
    low, high = float(images.min()), float(images.max())
    if low >= 0 and high <= 1:
        return images
    return (images - low) / max(high - low, 1e-12)


def image_grid(images: torch.Tensor, nrow: int, padding: int = PADDING, pad_value: float = 1.0) -> torch.Tensor:
    """``(B, H, W)`` images as one ``(3, rows * (H + padding) + padding, nrow * (W + padding) + padding)``
    grey-level grid, row by row: the layout of torchvision's ``make_grid`` for ``B > 1``.

    Written here with one reshape instead of importing torchvision, whose import pulls in
    TorchDynamo (seconds of start-up for a process that only draws figures).
    """
    b, h, w = images.shape
    cols = min(nrow, b)
    rows = -(-b // cols)
    blank = images.new_full((rows * cols - b, h, w), pad_value)
    cells = F.pad(torch.cat([images, blank]), (padding, 0, padding, 0), value=pad_value)  # top and left margins
    grid = cells.reshape(rows, cols, h + padding, w + padding).permute(0, 2, 1, 3)
    grid = F.pad(grid.reshape(rows * (h + padding), cols * (w + padding)), (0, padding, 0, padding), value=pad_value)
    return grid.expand(3, *grid.shape).contiguous()


def _grid(images: torch.Tensor, nrow: int, image_shape: Tuple[int, int]) -> torch.Tensor:
    return image_grid(_to_unit(images.detach().float().cpu()).reshape(-1, *image_shape), nrow)


def grid_tensor(kind: str, data: PlotData) -> torch.Tensor:
    """The ``(3, H, W)`` image grid of an image kind (as written to its PNG, e.g. for TensorBoard)."""
    spec = PLOTS[kind]
    if spec.images is None:
        raise PyroVAEError(f"figure {kind!r} is not an image grid")
    with torch.no_grad(), seeded(data.seed, data.x.device):
        return _grid(*spec.images(data), data.image_shape)


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG at ``DPI``, atomically (a reader never sees half a file); returns the path."""
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
    return path


def _label_pixels(names: Optional[Sequence[str]]) -> int:
    return 0 if not names else 12 + LABEL_PIXELS_PER_CHAR * max(len(str(n)) for n in names)


def grid_figure(images: torch.Tensor, nrow: int, image_shape: Tuple[int, int], title: str,
                row_names: Optional[Sequence[str]] = None,
                column_names: Optional[Sequence[str]] = None) -> Figure:
    """Images ``(B, H*W)`` in a grid of ``nrow`` columns under ``title``, as a figure.

    Each image pixel becomes ``scale x scale`` screen pixels, the smallest whole ``scale`` that
    makes the grid at least ``MIN_GRID_WIDTH`` wide, so small images stay sharp and readable.
    ``row_names`` label the grid's rows on the left, ``column_names`` its columns on top.
    """
    grey = _grid(images, nrow, image_shape)[0].numpy()
    height, width = grey.shape
    scale = max(1, -(-MIN_GRID_WIDTH // width))
    left = _label_pixels(row_names)
    top = TITLE_PIXELS + (LABEL_PIXELS_PER_CHAR * 2 if column_names else 0)
    size = (left + scale * width + 4, top + scale * height + 4)  # 4: a margin that keeps the edge pixels
    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    ax = fig.add_axes((left / size[0], 4 / size[1], scale * width / size[0], scale * height / size[1]))
    ax.imshow(grey, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    _name_grid_lines(ax, row_names, height, image_shape[0], "y")
    _name_grid_lines(ax, column_names, width, image_shape[1], "x")
    fig.suptitle(title, y=1 - 6 / size[1], va="top", fontsize=10)
    return fig


def _name_grid_lines(ax, names: Optional[Sequence[str]], extent: int, side: int, axis: str) -> None:
    """Ticks at the centres of the grid's rows (``axis="y"``) or columns, named ``names``, or none."""
    ax.tick_params(length=0, labelsize=9, top=True, labeltop=True, bottom=False, labelbottom=False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    step = side + PADDING
    centres = [PADDING + i * step + (side - 1) / 2 for i in range((extent - PADDING) // step)]
    names = list(names or [])[:len(centres)]
    getattr(ax, f"set_{axis}ticks")(centres[:len(names)], names)


def _labels(data: PlotData, rows) -> Optional[torch.Tensor]:
    return None if data.labels is None else data.labels[rows]


# -- the kinds -----------------------------------------------------------------------------


def _recon_blocks(data: PlotData) -> Tuple[int, int]:
    """Columns, and blocks of (inputs, reconstructions) rows: two where the test set has the rows."""
    cols = min(COLUMNS, len(data.x))
    return cols, max(1, min(2, len(data.x) // cols))


@register_grid("recon", "test inputs (odd rows) above their reconstructions (even rows), decoded from the "
                        "posterior mean",
               title=lambda data: "Test inputs and their reconstructions E[x|z] at each input's posterior code",
               rows=lambda data: ["input", "reconstruction"] * _recon_blocks(data)[1])
def recon_images(data: PlotData) -> Tuple[torch.Tensor, int]:
    """Two blocks of ``COLUMNS`` test inputs, each row of inputs followed by its reconstructions.

    The inputs are spread evenly over the test set, which shows several classes where the rows
    are sorted by label (mnist-5k's are).
    """
    cols, blocks = _recon_blocks(data)
    rows = torch.linspace(0, len(data.x) - 1, cols * blocks).long()
    x, rec = data.x[rows], reconstruct(data.vae, data.x[rows], _labels(data, rows))
    pairs = [t for i in range(blocks) for t in (x[i * cols:(i + 1) * cols], rec[i * cols:(i + 1) * cols])]
    return torch.cat(pairs), cols


def _sample_rows(data: PlotData) -> Optional[List[str]]:
    vae = data.vae
    return [data.class_name(c) for c in range(vae.num_classes)] if vae.conditioning.needs_labels else None


@register_grid("samples", "decoded prior samples; for a conditional run one row per class",
               title=lambda data: ("Decoded draws E[x|z], z ~ p(z|y), one row per class y"
                                   if data.vae.conditioning.needs_labels else "Decoded draws E[x|z], z ~ p(z)"),
               rows=_sample_rows)
def sample_images(data: PlotData) -> Tuple[torch.Tensor, int]:
    """``COLUMNS x COLUMNS`` decoded draws of ``p(z)``, or ``COLUMNS`` draws of ``p(z|y)`` per class ``y``."""
    vae = data.vae
    device = data.x.device
    y = (torch.arange(vae.num_classes, device=device).repeat_interleave(COLUMNS)
         if vae.conditioning.needs_labels else None)
    n = COLUMNS * (COLUMNS if y is None else vae.num_classes)
    z = vae.prior(y).expand((n,)).sample()
    return mean_image(vae.decode_top(z, y, draw=True)), COLUMNS


def _manifold_unavailable(data: PlotData) -> Optional[str]:
    if data.vae.z_top != 2:  # the top layer's z_L, decoded through the conditional means below it
        return f"the manifold needs a 2-D latent space; this run has Nz = {data.vae.z_dim}"
    if data.vae.conditioning.decoder_label:
        return "the decoder of a full CVAE needs a class label for every point of the manifold"
    return _needs_images(data)


def manifold_latents(vae, side: int = MANIFOLD_SIDE) -> torch.Tensor:
    """``side x side`` latents at the prior's quantiles (the paper's Figure 4), row-major, z2 falling.

    Quantiles ``(i + 1/2) / side`` pass through the inverse CDF of each prior coordinate; a prior
    with no per-coordinate inverse CDF (the class prior, a mixture) uses the standard Normal's.
    """
    device = next(vae.parameters()).device
    q = (torch.arange(side, device=device) + 0.5) / side
    grid = torch.stack([q.repeat(side), q.flip(0).repeat_interleave(side)], dim=-1)  # x: z1, y: z2
    try:
        prior = vae.prior()
        return (prior.base_dist if isinstance(prior, Independent) else prior).icdf(grid)
    except (NotImplementedError, AttributeError, PyroVAEError):
        return Normal(0.0, 1.0).icdf(grid)


@register_grid("manifold", "decodings at a grid of prior quantiles of a 2-D latent space (the paper's Figure 4)",
               title=lambda data: "Learned 2-D manifold: E[x|z] at prior quantiles, z1 rising to the right, z2 "
                                  "rising upwards",
               unavailable=_manifold_unavailable)
def manifold_images(data: PlotData) -> Tuple[torch.Tensor, int]:
    """The learned 2-D manifold: ``MANIFOLD_SIDE`` squared decodings, z1 left to right, z2 top to bottom."""
    z = manifold_latents(data.vae).to(data.x.dtype)
    return mean_image(data.vae.decode_top(z)), MANIFOLD_SIDE


def interp_pair(data: PlotData) -> Tuple[int, int, Optional[int]]:
    """Two test rows to interpolate between, and the label a CVAE decodes the path with.

    Different classes where the decoder ignores labels (the more telling path); the same class
    for a full CVAE, whose decoder takes a single label along the whole path.
    """
    if data.labels is None or len(data.x) < 2:
        return 0, min(1, len(data.x) - 1), None
    same = data.vae.conditioning.decoder_label
    first = int(data.labels[0])
    match = (data.labels[1:] == first) if same else (data.labels[1:] != first)
    b = 1 + int(match.nonzero()[0]) if bool(match.any()) else 1
    return 0, b, first if same else None


@register_grid("interp", "input A, the decodings along the latent path to input B, input B; linear path "
                         f"(top) and spherical (bottom), {INTERP_STEPS} steps",
               title=lambda data: f"Input A, {INTERP_STEPS} decodings along the latent path from A to B, input B",
               rows=lambda data: list(PATHS.names()))
def interp_images(data: PlotData) -> Tuple[torch.Tensor, int]:
    """Per path a row ``[x_a, decodings t = 0..1, x_b]``."""
    a, b, label = interp_pair(data)
    xa, xb = data.x[a], data.x[b]
    rows = [torch.cat([xa[None], interpolate(data.vae, xa, xb, INTERP_STEPS, name, label), xb[None]])
            for name in PATHS]
    return torch.cat(rows), INTERP_STEPS + 2


def _pad(m: torch.Tensor) -> torch.Tensor:
    return torch.cat([m, torch.zeros_like(m)], 1)


def _project(codes: torch.Tensor) -> Tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], Sequence[str]]:
    """2-D coordinates of the codes, the map that made them, and axis titles (PCA when Nz > 2)."""
    if codes.shape[1] == 1:
        return _pad(codes), _pad, ("z1", "")
    if codes.shape[1] == 2:
        return codes, lambda m: m, ("z1", "z2")
    center = codes.mean(0)
    _, s, vh = torch.linalg.svd(codes - center, full_matrices=False)
    share = (s[:2] ** 2 / (s ** 2).sum()).tolist()

    def project(m: torch.Tensor) -> torch.Tensor:
        return (m - center) @ vh[:2].T

    return project(codes), project, [f"PC{i + 1} ({v:.0%} of variance)" for i, v in enumerate(share)]


def _scatter_by_class(data: PlotData, fig, ax, points, labels: Optional[torch.Tensor]) -> None:
    """The points, coloured by class with a colour bar of the class names where there are labels."""
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.7)
        return
    classes = max(int(labels.max()) + 1, len(data.class_names or ()))
    sc = ax.scatter(points[:, 0], points[:, 1], c=labels.cpu().numpy(), cmap="tab10" if classes <= 10 else "turbo",
                    s=6, alpha=0.7, vmin=-0.5, vmax=classes - 0.5)
    bar = fig.colorbar(sc, ax=ax, ticks=range(classes), label="class")
    bar.ax.set_yticklabels([data.class_name(c) for c in range(classes)])


@register_figure("latent", "posterior means of the test set coloured by label (PCA to 2-D when Nz > 2)",
                 lambda data: None)
def draw_latent(data: PlotData, fig) -> None:
    """Scatter of the test codes; a class-conditional prior's means mu^y as labelled crosses."""
    rows = slice(0, LATENT_POINTS)
    codes = latent_codes(data.vae, data.x[rows], _labels(data, rows)).double().cpu()
    points, project, titles = _project(codes)
    points = points.numpy()
    ax = fig.add_subplot(1, 1, 1)
    _scatter_by_class(data, fig, ax, points, _labels(data, rows))
    means = getattr(data.vae.prior, "means", None)
    if means is not None:  # the learned class means of Su Jianlin, "Variational autoencoders (1)", 2018, eq. 8
        m = project(means.detach().double().cpu()).numpy()
        ax.scatter(m[:, 0], m[:, 1], marker="X", c="black", s=60, label="class means $\\mu^y$")
        for c, (u, v) in enumerate(m):
            ax.annotate(data.class_name(c), (u, v), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.legend(fontsize=8, loc="best")
    ax.set_xlabel(titles[0])
    ax.set_ylabel(titles[1])
    ax.set_title(f"test codes E[{data.vae.layers.names[-1]}|x], Nz = {data.vae.z_dim}")


def _kl_unavailable(data: PlotData) -> Optional[str]:
    try:
        kl_per_dimension(data.vae, data.x[:2], _labels(data, slice(0, 2)), num_samples=1)
    except PyroVAEError as e:
        return str(e)
    return None


@register_figure("kl", "KL(q(z_u|x) || p(z_u)) per latent dimension on the test set; active units in colour",
                 _kl_unavailable)
def draw_kl(data: PlotData, fig) -> None:
    """Bars of the per-dimension KL; units with Cov_x(E[z_u|x]) > 0.01 are active (Burda et al. 2015)."""
    kl = kl_per_dimension(data.vae, data.x, data.labels).cpu()
    count, activity = active_units(data.vae, data.x, labels=data.labels)
    active = (activity > 0.01).cpu()
    ax = fig.add_subplot(1, 1, 1)
    dims = torch.arange(1, len(kl) + 1)
    for mask, colour, name in ((active, "C0", "active"), (~active, "0.7", "inactive")):
        if bool(mask.any()):
            ax.bar(dims[mask].tolist(), kl[mask].tolist(), color=colour, label=name)
    ax.set_xlim(0.4, len(kl) + 0.6)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("latent dimension u")
    ax.set_ylabel("KL (nats / point)")
    ax.set_title(f"KL per dimension: total {float(kl.sum()):.2f} nats, {count} of {len(kl)} units active")
    ax.legend(fontsize=8)


def _curves_unavailable(data: PlotData) -> Optional[str]:
    return None if data.metrics else "there are no per-epoch metrics (metrics.json is empty)"


@register_figure("curves", "train and test ELBO, test KL and test reconstruction term against training samples "
                           "seen", _curves_unavailable)
def draw_curves(data: PlotData, fig) -> None:
    """Three panels over samples seen: the bounds (train dashed, test solid; an iwae/dreg run trains the
    IWAE bound, drawn beside the test ELBO under its own name), KL, reconstruction."""
    xs = [r["samples_seen"] for r in data.metrics]
    bounds = (("train_elbo", "--", "train ELBO"), ("test_elbo", "-", "test ELBO"),
              ("train_iwae", "--", "train IWAE bound"), ("test_iwae", "-", "test IWAE bound"))
    panels = (("bound", bounds),
              ("KL(q || p)", (("test_kl", "-", "test"),)),
              ("E_q log p(x|z)", (("test_recon", "-", "test"),)))
    for i, (title, series) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for key, style, name in series:
            if key in data.metrics[-1]:
                ax.plot(xs, [r[key] for r in data.metrics], style, marker="o", markersize=3, label=name)
        ax.set_title(f"{title} (nats / point)")
        ax.set_xlabel("training samples seen")
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())  # 40k, not 40000
        if ax.lines:
            ax.legend(fontsize=8)
    beta, warmup = data.config.get("beta", 1.0), data.config.get("kl_warmup_epochs", 0)
    if beta != 1.0 or warmup:
        fig.suptitle(f"trained with KL weight beta = {beta:g}, warm-up {warmup} epochs; "
                     "curves show the true ELBO (weight 1)", fontsize=9)


# -- entry points --------------------------------------------------------------------------


def _from_run(run: str | os.PathLike, device: str) -> Tuple[PlotData, Path]:
    vae, config, dataset, folder = load_run(run, device=device)
    data = PlotData(vae.eval(), dataset.test.to(device), _on(dataset.test_labels, device), dataset.image_shape,
                    folder.read_metrics(), config.to_dict(), config.seed, dataset.class_names)
    return data, folder.path


def _on(t: Optional[torch.Tensor], device) -> Optional[torch.Tensor]:
    return None if t is None else t.to(device)


def _from_vae(vae, data, labels, image_shape, metrics, seed) -> PlotData:
    if data is None:
        raise PyroVAEError("plotting a VAE needs data= (test rows, or a pyrovae Dataset)")
    class_names = getattr(data, "class_names", None)
    if isinstance(data, Dataset):
        data, labels, image_shape = data.test, data.test_labels if labels is None else labels, \
            image_shape or data.image_shape
    device = next(vae.parameters()).device
    x = torch.as_tensor(data).to(device=device, dtype=next(vae.parameters()).dtype)
    vae.check_data(x, "plot data")
    # Labels colour the latent plot of any VAE; a conditional VAE cannot do without them.
    y = (validate_labels(labels, len(x), vae.num_classes, "plot labels") if labels is not None
         else vae.check_labels(None, len(x), "plot labels"))
    return PlotData(vae, x, _on(y, device), image_shape, list(metrics or []), {}, seed, class_names)


def _source(source, data, labels, image_shape, metrics, seed, device) -> Tuple[PlotData, Path]:
    """What to draw and the default output folder: a run folder's, or an in-memory VAE's (``.``)."""
    if isinstance(source, (str, os.PathLike, RunFolder)):
        return _from_run(getattr(source, "path", source), device)
    return _from_vae(source, data, labels, image_shape, metrics, seed), Path(".")


def plot(source, kind: str, out: Optional[str | os.PathLike] = None, *, data=None, labels=None,
         image_shape: Optional[Tuple[int, int]] = None, metrics: Optional[List[Dict[str, Any]]] = None,
         seed: int = 0, device: str = "cpu") -> Path:
    """Draw one figure ``kind`` (a name in :data:`PLOTS`) and save it as ``<out>/<kind>.png``.

    :param source: a run folder (its VAE, test set, labels and metrics are loaded; ``out``
        defaults to the folder), or a trained :class:`~pyrovae.VAE` with ``data``.
    :param data: for a VAE: test rows ``(N, x_dim)``, or a :class:`~pyrovae.Dataset` (its test
        split, labels and image shape).
    :param labels: the rows' class labels (colours the ``latent`` plot; needed by conditional VAEs).
    :param image_shape: ``(H, W)`` of one image, for the image grids.
    :param metrics: per-epoch records (``FitResult.metrics``), for ``curves``.
    :returns: the path of the PNG.
    """
    plot_data, folder = _source(source, data, labels, image_shape, metrics, seed, device)
    return _draw(PLOTS[kind], plot_data, Path(out) if out is not None else folder)


def figure(source, kind: str, *, data=None, labels=None, image_shape: Optional[Tuple[int, int]] = None,
           metrics: Optional[List[Dict[str, Any]]] = None, seed: int = 0, device: str = "cpu") -> Figure:
    """Draw one figure ``kind`` and return it as a :class:`matplotlib.figure.Figure`; nothing is written.

    The arguments are :func:`plot`'s. The figure needs no matplotlib backend: a notebook shows
    it as the cell's value, and ``fig.savefig(...)`` writes it anywhere.
    """
    spec = PLOTS[kind]
    plot_data, _ = _source(source, data, labels, image_shape, metrics, seed, device)
    _check_available(spec, plot_data)
    with torch.no_grad(), seeded(plot_data.seed, plot_data.x.device):
        return spec.figure(plot_data)


def _check_available(spec: PlotKind, data: PlotData) -> None:
    reason = spec.unavailable(data)
    if reason:
        raise PyroVAEError(f"figure {spec.name!r} cannot be drawn: {reason}")


def _draw(spec: PlotKind, data: PlotData, out: Path) -> Path:
    _check_available(spec, data)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{spec.name}.png"
    with torch.no_grad(), seeded(data.seed, data.x.device):
        spec.draw(data, path)
    return path


def write_figures(run: str | os.PathLike, kinds: Optional[Sequence[str]] = None,
                  device: str = "cpu") -> Dict[str, Path]:
    """Write figures of a run folder into it as ``<kind>.png``; returns ``{kind: path}``.

    With ``kinds=None`` every registered kind that applies to the run is drawn and the others
    (``manifold`` for Nz != 2, say) are skipped; a kind named explicitly that does not apply
    raises :class:`PyroVAEError`.
    """
    names = [PLOTS.check(k) for k in kinds] if kinds is not None else None
    data, folder = _from_run(run, device)
    return draw_figures(data, folder, names)


def draw_figures(data: PlotData, folder: Path, kinds: Optional[Sequence[str]] = None) -> Dict[str, Path]:
    """Write the figures of ``data`` into ``folder`` as ``<kind>.png`` (``kinds=None``: every kind that
    applies); returns ``{kind: path}``. :func:`write_figures` calls it on a loaded run folder, and
    :func:`pyrovae.fit` on the model it has just trained, without loading anything again."""
    chosen = ([PLOTS.check(k) for k in kinds] if kinds is not None else
              [n for n, spec in PLOTS.items() if spec.unavailable(data) is None])
    return {name: _draw(PLOTS[name], data, Path(folder)) for name in chosen}
