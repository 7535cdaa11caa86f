# SPDX-License-Identifier: Apache-2.0
"""Checks an SVG written by rotquant-inspect: well-formed XML (xml.etree parses it), an <svg>
root, and every title given on the command line present in its text elements.

usage: python3 check_svg.py FILE.svg [TITLE...]
"""
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


def main(argv):
    path, titles = argv[1], argv[2:]
    root = ET.parse(path).getroot()
    if root.tag != SVG + "svg":
        print(f"{path}: the root element is {root.tag}, not svg")
        return 1
    texts = ["".join(e.itertext()) for e in root.iter(SVG + "text")]
    missing = [t for t in titles if not any(t in s for s in texts)]
    for t in missing:
        print(f"{path}: no text contains '{t}'")
    print(f"{path}: well-formed SVG, {len(texts)} text elements, "
          f"{len(titles) - len(missing)}/{len(titles)} titles found")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
