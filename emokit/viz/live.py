"""Live pictures for notebooks: alpha heatmaps and curves redrawn every
epoch in place, and a slider over a finished search's alpha history.

In JupyterLab the pictures update inside an ``ipywidgets.Output``; under
papermill (where no widget renders) the same frames are saved as PNG files,
so a batch run leaves the pictures behind too.
"""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from emokit.viz.alphas import alpha_heatmaps
from emokit.viz.training import schedule_curves, training_curves


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class LiveMonitor:
    """Per-epoch callback for :func:`emokit.search.loop.run_search` and
    :func:`emokit.train.train_model`.

    Parameters
    ----------
    frames_dir : folder for one PNG per epoch (None: save nothing)
    live : show and update the pictures in the notebook

    With neither, it only collects the epochs' rows (``rows``) and draws nothing.
    """

    def __init__(self, frames_dir: str | Path | None = None, live: bool = True):
        self.frames_dir = Path(frames_dir) if frames_dir is not None else None
        self.rows: list[dict] = []
        self.alpha_fig = None  # sized by the first snapshot, then redrawn in place
        self.curve_fig = Figure(figsize=(10, 3), layout="constrained")
        self.output = None
        if live:
            import ipywidgets
            from IPython.display import display

            self.output = ipywidgets.Output()
            display(self.output)

    def __call__(self, record: dict) -> None:
        row = record.get("row", record)
        self.rows.append({k: v for k, v in row.items() if isinstance(v, (int, float))})
        if self.frames_dir is None and self.output is None:
            return  # nobody would see the pictures: drawing them cost about 0.6 s an epoch
        images = []
        if "snapshot" in record:
            self.alpha_fig = alpha_heatmaps(record["snapshot"], record["ops"], fig=self.alpha_fig)
            self.alpha_fig.suptitle(f"softmax(alpha) after epoch {record['epoch']}", x=0.01, y=0.995, ha="left",
                                    va="top", fontsize=10)
            images.append(("alphas", self.alpha_fig))
        self.curve_fig.clear()
        metrics_ax, schedule_ax = self.curve_fig.subplots(1, 2, width_ratios=[2, 1])
        log = pd.DataFrame(self.rows)
        training_curves(log, ax=metrics_ax)
        schedule_curves(log, ax=schedule_ax)
        images.append(("curves", self.curve_fig))
        pngs = [(name, figure_png(fig)) for name, fig in images]
        if self.frames_dir is not None:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
            for name, png in pngs:
                (self.frames_dir / f"{name}_epoch{record['epoch']:03d}.png").write_bytes(png)
        if self.output is not None:
            from IPython.display import Image, Markdown, display

            with self.output:
                self.output.clear_output(wait=True)
                for _, png in pngs:
                    display(Image(data=png))
                for message in record.get("collapse", []):
                    display(Markdown(f"**collapse warning:** {message}"))


def alpha_slider(history: dict, ops: dict):
    """A slider that scrubs a search's alpha history epoch by epoch.

    Parameters
    ----------
    history : dict cell type -> ndarray (epochs, n_edges, n_ops)
    ops : dict cell type -> op names
    """
    import ipywidgets
    from IPython.display import Image, display

    epochs = len(next(iter(history.values())))
    fig = Figure(figsize=(15, 6))
    output = ipywidgets.Output()

    def show(epoch: int) -> None:  # epochs count from 1
        alpha_heatmaps({t: h[epoch - 1] for t, h in history.items()}, ops, fig=fig)
        fig.suptitle(f"softmax(alpha) after epoch {epoch}", x=0.01, y=0.995, ha="left", va="top", fontsize=10)
        with output:
            output.clear_output(wait=True)
            display(Image(data=figure_png(fig)))

    slider = ipywidgets.IntSlider(value=epochs, min=1, max=epochs, description="epoch")
    slider.observe(lambda change: show(change["new"]), names="value")
    show(epochs)
    return ipywidgets.VBox([slider, output])
