"""Clicking a row of an st.dataframe in a browser (tests and bench/screenshots.py): Glide draws the table on a
canvas, so a row is clicked by position, on its row marker (the selection checkbox at the left edge)."""
from __future__ import annotations

HEADER_HEIGHT_PX = 35   # Streamlit's st.dataframe header and row heights (its defaults)
ROW_HEIGHT_PX = 35
ROW_MARKER_X_PX = 18    # inside the row marker column at the table's left edge


def click_table_row(grid, row_index: int) -> None:
    """Click row `row_index` (0 = the first data row) of the st.dataframe `grid` (a locator of its
    `[data-testid="stDataFrame"]` element), which selects it: a clickable table then opens that row."""
    grid.wait_for(state="visible")
    box = grid.bounding_box()
    grid.page.mouse.click(box["x"] + ROW_MARKER_X_PX,
                          box["y"] + HEADER_HEIGHT_PX + ROW_HEIGHT_PX * row_index + ROW_HEIGHT_PX / 2)
