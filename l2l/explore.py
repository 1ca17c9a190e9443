"""Explorer cells of the notebooks: a drawing function behind ipywidgets controls.

:func:`explorer` first draws once with the function's own defaults, a static result that every
viewer shows (GitHub, a saved notebook, CI); then, where ipywidgets is installed, it displays the
same function behind controls with a *draw* button, so that each redraw is asked for, not
triggered by every slider movement.
"""

from __future__ import annotations


def explorer(draw, **controls):
    """Call ``draw()`` once, then show ``draw`` behind widgets made from ``controls``.

    ``controls`` are ipywidgets abbreviations (a list of choices, a ``(min, max, step)`` tuple, a
    bool) or widgets, one per keyword argument of ``draw``; each starts at ``draw``'s default.
    Returns the ``ipywidgets.interactive`` object, or None where ipywidgets is missing.
    """
    draw()
    try:
        import ipywidgets
        from IPython.display import display
    except ImportError:
        print("(install ipywidgets, e.g. pip install 'l2l[notebooks]', to change these settings "
              "with controls)")
        return None
    widget = ipywidgets.interactive(draw, {"manual": True, "manual_name": "draw"}, **controls)
    bundle = widget._repr_mimebundle_()
    # what a viewer without widgets (GitHub, a terminal) shows instead of the controls
    bundle["text/plain"] = "(controls: run the notebook in Jupyter to change these settings)"
    display(bundle, raw=True)
    return widget
