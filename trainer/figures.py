"""Draw the confusion matrix and ROC curve of a fitted pipeline and log them to the active run.

The figures are `matplotlib.figure.Figure` objects built without pyplot, so they render with
the Agg canvas on machines without a display and are not kept in pyplot's list of open figures.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay
from sklearn.pipeline import Pipeline

CONFUSION_MATRIX_FILE = "confusion_matrix.png"
ROC_CURVE_FILE = "roc_curve.png"

# Figure size in inches; at matplotlib's default 100 dots per inch a figure is 500 x 450 pixels.
FIGURE_SIZE_IN = (5.0, 4.5)


def log_figures(
    pipeline: Pipeline, x_test: pd.DataFrame, y_test: pd.Series, positive_label: str
) -> None:
    """Log the held-out confusion matrix and the ROC curve of `positive_label` as PNG files.

    The ROC curve is skipped when the held-out rows are all on one side of `positive_label`,
    because it is undefined there.
    """
    confusion = Figure(figsize=FIGURE_SIZE_IN, layout="constrained")
    ConfusionMatrixDisplay.from_predictions(
        y_test, pipeline.predict(x_test), ax=confusion.add_subplot(), colorbar=False
    )
    confusion.axes[0].set_title("held-out confusion matrix")
    mlflow.log_figure(confusion, CONFUSION_MATRIX_FILE)

    is_positive = (y_test == positive_label).to_numpy()
    if is_positive.all() or not is_positive.any():
        return
    positive_column = list(pipeline.classes_).index(positive_label)
    roc = Figure(figsize=FIGURE_SIZE_IN, layout="constrained")
    RocCurveDisplay.from_predictions(
        is_positive,
        pipeline.predict_proba(x_test)[:, positive_column],
        name=f"{positive_label} vs rest",
        ax=roc.add_subplot(),
        plot_chance_level=True,
    )
    roc.axes[0].set_title("held-out ROC curve")
    mlflow.log_figure(roc, ROC_CURVE_FILE)
