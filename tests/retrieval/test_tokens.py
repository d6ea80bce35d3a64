import pytest
import tiktoken.load

from threadline import tokens


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    tokens.get_encoding.cache_clear()

    def no_network(path: str) -> bytes:
        raise AssertionError(f"tiktoken tried to download {path}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    yield tmp_path / "tiktoken"
    tokens.get_encoding.cache_clear()


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_encodings_load_offline(fresh_cache, name):
    enc = tokens.get_encoding(name)
    assert enc.name == name
    assert enc.decode(enc.encode("naïve café 日本語")) == "naïve café 日本語"
    assert len(list(fresh_cache.iterdir())) == 1


def test_known_counts(fresh_cache):
    # Reference values from OpenAI's tokenizers.
    assert tokens.count_tokens("hello world", "gpt-4") == 2
    assert tokens.count_tokens("hello world", "gpt-4o") == 2
    assert tokens.get_encoding("cl100k_base").encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert tokens.get_encoding("o200k_base").encode("hello world") == [24912, 2375]


def test_special_token_text_is_counted_as_text(fresh_cache):
    assert tokens.count_tokens("<|endoftext|>") > 1


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-5-nano", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-sonnet-4", "cl100k_base"),
        ("llama-3.1-8b", "cl100k_base"),
        (None, "o200k_base"),
    ],
)
def test_model_mapping(model, expected):
    assert tokens.encoding_name_for_model(model) == expected


def test_unknown_encoding_rejected():
    with pytest.raises(ValueError):
        tokens.get_encoding("r50k_base")
