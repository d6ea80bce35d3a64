"""Turn an uploaded file's bytes into plain text (Markdown for structured documents).

Office documents, PDF and HTML go through markitdown; text and source files are decoded directly
(utf-8, utf-16 with or without BOM, ascii), the encodings file_search accepts.
"""

from __future__ import annotations

import codecs
import io
import logging
import threading
from pathlib import PurePath


class ParseError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedFile(ParseError):
    """The file type cannot be indexed (images, archives, executables...). Maps to last_error.code unsupported_file."""


class InvalidFile(ParseError):
    """The file claims a supported type but is corrupt, undecodable or has no text. Maps to invalid_file."""


TEXT_EXTENSIONS = frozenset(
    [
        "txt",
        "text",
        "md",
        "markdown",
        "mdx",
        "rst",
        "adoc",
        "org",
        "tex",
        "bib",
        "log",
        "csv",
        "tsv",
        "json",
        "jsonl",
        "ndjson",
        "yaml",
        "yml",
        "toml",
        "ini",
        "cfg",
        "conf",
        "env",
        "xml",
        "svg",
        "c",
        "h",
        "cc",
        "cpp",
        "cxx",
        "hpp",
        "hh",
        "cs",
        "java",
        "kt",
        "kts",
        "scala",
        "go",
        "rs",
        "swift",
        "m",
        "mm",
        "php",
        "rb",
        "pl",
        "pm",
        "py",
        "pyi",
        "ipynb",
        "r",
        "jl",
        "lua",
        "dart",
        "js",
        "mjs",
        "cjs",
        "jsx",
        "ts",
        "tsx",
        "vue",
        "svelte",
        "css",
        "scss",
        "sass",
        "less",
        "sh",
        "bash",
        "zsh",
        "fish",
        "ps1",
        "bat",
        "sql",
        "graphql",
        "proto",
        "gradle",
        "make",
        "mk",
        "cmake",
        "dockerfile",
        "tf",
        "hcl",
        "properties",
        "srt",
        "vtt",
    ]
)
MARKITDOWN_EXTENSIONS = frozenset({"pdf", "docx", "pptx", "xlsx", "html", "htm", "xhtml"})
_UNSUPPORTED_HINT = {
    "doc": "legacy .doc files are not supported; convert to .docx",
    "ppt": "legacy .ppt files are not supported; convert to .pptx",
    "xls": "legacy .xls files are not supported; convert to .xlsx",
}
_MAGIC = [
    (b"%PDF-", "pdf"),
    (b"\x89PNG", None),
    (b"\xff\xd8\xff", None),
    (b"GIF8", None),
    (b"\x7fELF", None),
    (b"\x1f\x8b", None),
    (b"MZ", None),
    (b"BZh", None),
    (b"7z\xbc\xaf", None),
    (b"Rar!", None),
    (b"RIFF", None),
    (b"OggS", None),
    (b"ID3", None),
    (b"\xd0\xcf\x11\xe0", None),  # OLE2: legacy Office
]

_converters: dict[str, object] = {}
_conv_lock = threading.Lock()
logging.getLogger("pdfminer").setLevel(logging.ERROR)


def _converter(ext: str):  # noqa: ANN202 - a markitdown DocumentConverter
    # The specific converters are called directly: MarkItDown's dispatcher would fall back to its plain-text
    # converter when a corrupt file fails to parse, and index the raw bytes.
    from markitdown import converters

    classes = {
        "pdf": converters.PdfConverter,
        "docx": converters.DocxConverter,
        "pptx": converters.PptxConverter,
        "xlsx": converters.XlsxConverter,
        "html": converters.HtmlConverter,
    }
    with _conv_lock:
        if ext not in _converters:
            _converters[ext] = classes[ext]()
        return _converters[ext]


def _extension(filename: str) -> str:
    name = PurePath(filename or "").name.lower()
    if name in {"dockerfile", "makefile", "readme", "license"}:
        return "txt"
    return name.rsplit(".", 1)[1] if "." in name else ""


def decode_text(data: bytes) -> str | None:
    """Decode utf-8 / utf-16 (BOM or NUL-pattern sniffed) / ascii text; None when the bytes are not such text."""
    if data.startswith(codecs.BOM_UTF8):
        encodings = ["utf-8-sig"]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ["utf-16"]
    else:
        encodings = ["utf-8"]
        sample = data[:4096]
        if len(sample) >= 2 and sample.count(b"\x00") * 4 >= len(sample):
            # BOM-less utf-16: NULs sit at the odd (LE) or even (BE) positions for mostly-ASCII text.
            le = sample[1::2].count(0) > sample[0::2].count(0)
            encodings = ["utf-16-le" if le else "utf-16-be"]
    for enc in encodings:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if _looks_binary(text):
            return None
        return text
    return None


def _looks_binary(text: str) -> bool:
    sample = text[:8192]
    if not sample:
        return False
    controls = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\t\n\r\f\v\x1b") or ch == "\x7f")
    return "\x00" in sample or controls > len(sample) * 0.05


def _sniff(data: bytes) -> str | None:
    """Extension for a file whose name says nothing useful, from magic bytes. None means unsupported binary."""
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data.startswith(b"PK\x03\x04"):
        head = data[:65536]
        if b"word/" in head:
            return "docx"
        if b"ppt/" in head:
            return "pptx"
        if b"xl/" in head:
            return "xlsx"
        return None
    return "txt"


def _convert(data: bytes, ext: str, filename: str) -> str:
    from markitdown import StreamInfo

    if ext in {"htm", "xhtml"}:
        ext = "html"
    if ext == "pdf" and b"%PDF-" not in data[:1024]:
        raise InvalidFile("not a valid PDF file")
    if ext in {"docx", "pptx", "xlsx"} and not data.startswith(b"PK\x03\x04"):
        raise InvalidFile(f"not a valid .{ext} file")
    charset = None
    if ext == "html":
        charset = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8"
    mimetypes = {"html": "text/html", "pdf": "application/pdf"}
    info = StreamInfo(
        extension="." + ext,
        filename=PurePath(filename or f"file.{ext}").name,
        mimetype=mimetypes.get(ext),
        charset=charset,
    )
    try:
        result = _converter(ext).convert(io.BytesIO(data), info)
    except Exception as exc:  # parsers raise many exception types on corrupt input
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InvalidFile(f"could not parse the file as .{ext}: {reason[:300]}") from exc
    return result.markdown or ""


def extract_text(data: bytes, filename: str) -> str:
    """Extract indexable text from a file. Raises UnsupportedFile or InvalidFile; never anything else."""
    try:
        return _extract(data, filename)
    except ParseError:
        raise
    except Exception as exc:  # belt and braces: a parser bug must not take the ingestion worker down
        raise InvalidFile(f"could not parse the file: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _extract(data: bytes, filename: str) -> str:
    if not data:
        raise InvalidFile("the file is empty")
    ext = _extension(filename)
    if ext in _UNSUPPORTED_HINT:
        raise UnsupportedFile(_UNSUPPORTED_HINT[ext])
    if ext not in TEXT_EXTENSIONS and ext not in MARKITDOWN_EXTENSIONS:
        sniffed = _sniff(data)
        if sniffed is None or (ext and sniffed == "txt" and decode_text(data) is None):
            shown = f".{ext}" if ext else "this"
            raise UnsupportedFile(f"{shown} file type is not supported for file_search")
        ext = sniffed
        if ext == "txt" and decode_text(data) is None:
            raise UnsupportedFile("binary file type is not supported for file_search")
    if ext in TEXT_EXTENSIONS:
        text = decode_text(data)
        if text is None:
            raise InvalidFile("text files must be utf-8, utf-16 or ascii encoded")
    else:
        text = _convert(data, ext, filename)
    text = text.replace("\x00", "")
    if not text.strip():
        raise InvalidFile("no text could be extracted from the file")
    return text
