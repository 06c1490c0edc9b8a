"""Small tables that read well both as Markdown files and in a notebook."""

from dataclasses import dataclass


@dataclass
class Table:
    """A header, rows of cells (already formatted as text) and an optional caption.

    A notebook renders it as Markdown (_repr_markdown_); str() gives the same
    Markdown text, for files and terminals.
    """

    header: list
    rows: list
    caption: str = ""

    def to_markdown(self):
        lines = [_markdown_row(self.header), _markdown_row(["---"] * len(self.header))]
        lines += [_markdown_row(row) for row in self.rows]
        if self.caption:
            lines = [self.caption, "", *lines]
        return "\n".join(lines) + "\n"

    def _repr_markdown_(self):
        return self.to_markdown()

    def __str__(self):
        return self.to_markdown()


def _markdown_row(cells):
    # A "|" inside a cell would end it early.
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"
