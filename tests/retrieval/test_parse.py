import contextlib
import io
import json
import zipfile

import pytest

from threadline.retrieval.parse import InvalidFile, UnsupportedFile, extract_text


def make_pdf() -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.drawString(72, 800, "Quarterly report: revenue grew 14 percent.")
    c.showPage()
    c.drawString(72, 800, "Second page mentions the refund policy of 30 days.")
    c.save()
    return buf.getvalue()


def make_docx() -> bytes:
    import docx

    d = docx.Document()
    d.add_heading("Onboarding guide", level=1)
    d.add_paragraph("Badges are collected at the front desk.", style="List Number")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Room"
    table.cell(0, 1).text = "Capacity"
    table.cell(1, 0).text = "Atlas"
    table.cell(1, 1).text = "12"
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def make_pptx() -> bytes:
    from pptx import Presentation

    p = Presentation()
    slide = p.slides.add_slide(p.slide_layouts[1])
    slide.shapes.title.text = "Q3 Roadmap"
    slide.placeholders[1].text = "Ship the vector store search endpoint"
    buf = io.BytesIO()
    p.save(buf)
    return buf.getvalue()


def make_xlsx() -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["product", "price"])
    ws.append(["widget", 9.5])
    ws.append(["gizmo", 12])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_pdf():
    text = extract_text(make_pdf(), "report.pdf")
    assert "revenue grew 14 percent" in text and "refund policy of 30 days" in text


def test_pdf_without_extension_is_sniffed():
    assert "revenue grew" in extract_text(make_pdf(), "upload")


def test_docx():
    text = extract_text(make_docx(), "guide.docx")
    assert "Onboarding guide" in text and "front desk" in text
    assert "Atlas" in text and "Capacity" in text


def test_pptx():
    text = extract_text(make_pptx(), "deck.pptx")
    assert "Q3 Roadmap" in text and "vector store search endpoint" in text


def test_xlsx():
    text = extract_text(make_xlsx(), "prices.xlsx")
    assert "widget" in text and "9.5" in text and "gizmo" in text


def test_html_keeps_text_drops_markup():
    html = (
        b"<html><head><title>T</title><script>var x=1;</script></head>"
        b"<body><h1>Returns</h1><p>Within <b>14 days</b>.</p></body></html>"
    )
    text = extract_text(html, "page.html")
    assert "Returns" in text and "14 days" in text
    assert "<p>" not in text and "var x" not in text


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("notes.md", b"# Title\n\nSome *markdown* text.", "*markdown*"),
        ("main.py", b"def handler(event):\n    return event['id']\n", "def handler"),
        ("data.json", json.dumps({"city": "Zürich", "n": 3}, ensure_ascii=False).encode(), "Zürich"),
        ("table.csv", b"name,qty\napple,3\npear,5\n", "pear,5"),
        ("readme.txt", "utf-16 text with ümlauts".encode("utf-16"), "ümlauts"),
        ("le.txt", "bom-less utf-16 little endian text".encode("utf-16-le"), "little endian"),
        ("bom.txt", "\ufeffutf-8 with bom".encode(), "utf-8 with bom"),
        ("script.unknownext", b"plain ascii content in an unknown extension", "plain ascii"),
    ],
)
def test_text_and_source_files(name, data, needle):
    text = extract_text(data, name)
    assert needle in text
    assert "\ufeff" not in text


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        ("photo.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64),
        ("a.out", b"\x7fELF\x02\x01\x01" + b"\x00" * 64),
        ("archive.zip", None),
        ("legacy.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64),
        ("blob.bin", bytes(range(256)) * 4),
    ],
)
def test_unsupported(name, data):
    if data is None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("a.txt", "hello")
        data = buf.getvalue()
    with pytest.raises(UnsupportedFile):
        extract_text(data, name)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.txt", b""),
        ("blank.md", b"   \n\n\t  "),
        ("broken.pdf", b"%PDF-1.7\n this is not really a pdf \x00\x01"),
        ("truncated.pdf", None),
        ("fake.docx", b"PK\x03\x04 definitely not a docx"),
        ("fake.xlsx", b"not a spreadsheet"),
        ("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1")),
    ],
)
def test_invalid(name, data):
    if data is None:
        data = make_pdf()[:200]
    with pytest.raises(InvalidFile):
        extract_text(data, name)


def test_image_only_pdf_is_invalid():
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.rect(10, 10, 100, 100, fill=1)
    c.save()
    with pytest.raises(InvalidFile):
        extract_text(buf.getvalue(), "scan.pdf")


def test_random_garbage_never_crashes():
    import random

    rng = random.Random(7)
    for _i in range(40):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
        name = rng.choice(["x.pdf", "x.docx", "x.pptx", "x.xlsx", "x.html", "x.txt", "x", "x.json"])
        with contextlib.suppress(UnsupportedFile, InvalidFile):
            extract_text(data, name)
