"""Writes a generated section of BENCHMARKS.md: the text between the markers
<!-- NAME:begin --> and <!-- NAME:end -->, which the benchmark scripts own;
everything outside them (the readings) is left as it is."""
import pathlib


def write_section(name, heading, command, body, path="BENCHMARKS.md"):
    """Replaces the NAME section's generated text with BODY; when the markers
    are not there yet, appends a section titled HEADING that names COMMAND."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip(chr(10))}\n{end}"
    doc = pathlib.Path(path)
    text = doc.read_text()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n    {command}\n\n{block}\n"
    doc.write_text(text)
