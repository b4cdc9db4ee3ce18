"""Reads an XHTML page or SVG written by seqgrad back: parses it as XML (so a page that is not
well-formed fails here) and prints JSON with every figure's cell values by svg id,
{"figures": {id: [[row values]]}, "loss": [step losses]}.
usage: read_page.py PAGE OUT.json"""
import json
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"


def main(page, out):
    root = ET.parse(page).getroot()
    figures = {}
    for svg in root.iter(SVG + "svg"):
        cells = {}
        for rect in svg.iter(SVG + "rect"):
            if "data-value" in rect.attrib:
                i, j = int(rect.attrib["data-row"]), int(rect.attrib["data-col"])
                cells[(i, j)] = float(rect.attrib["data-value"])
        rows = 1 + max((i for i, _ in cells), default=-1)
        cols = 1 + max((j for _, j in cells), default=-1)
        figures[svg.attrib.get("id", "")] = [[cells[(i, j)] for j in range(cols)] for i in range(rows)]
    loss = [float(td.attrib["data-value"]) for td in root.iter(XHTML + "td") if "data-value" in td.attrib]
    with open(out, "w") as f:
        json.dump({"figures": figures, "loss": loss}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
