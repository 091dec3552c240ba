"""Token estimates for reserving window room before the upstream reports real usage.

About four characters per token for text, a flat cost per image and per message. The estimate
only has to be close: after the call the window is corrected to the upstream's real count.

The arithmetic lives here once. ``app.inbound`` applies it while it checks a request (one pass
over the body); ``estimate_prompt_tokens`` / ``estimate_embedding_tokens`` apply it to a body
that did not come through the boundary and are the reference the boundary is tested against.
"""

from __future__ import annotations

import orjson

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_IMAGE = 800
REPLY_PRIMING_TOKENS = 3  # every reply starts with a few tokens of its own
IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})


def prompt_estimate(chars: int, images: int, messages: int) -> int:
    """Prompt tokens of a chat request with ``chars`` characters of text and tool JSON."""
    return chars // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * messages + TOKENS_PER_IMAGE * images + REPLY_PRIMING_TOKENS


def text_tokens(text: str) -> int:
    """Tokens of one embeddings input text (at least one)."""
    return max(1, len(text) // CHARS_PER_TOKEN)


def _content_chars(content) -> tuple[int, int]:
    """(characters, images) of a message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return len(content), 0
    chars = images = 0
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):  # a bare string part, which the adapters send as text
                chars += len(part)
                continue
            if not isinstance(part, dict):
                continue
            if part.get("type") in IMAGE_PART_TYPES:
                images += 1
            else:
                text = part.get("text")
                chars += len(text) if isinstance(text, str) else 0
    return chars, images


def estimate_prompt_tokens(chat: dict) -> int:
    chars = images = 0
    messages = chat.get("messages") or []
    for message in messages:
        if not isinstance(message, dict):
            continue
        c, i = _content_chars(message.get("content"))
        chars += c
        images += i
        calls = message.get("tool_calls")
        if calls:
            chars += len(orjson.dumps(calls))
    tools = chat.get("tools")
    if tools:
        chars += len(orjson.dumps(tools))
    return prompt_estimate(chars, images, len(messages))


def estimate_embedding_tokens(body: dict) -> int:
    """Tokens of an embeddings ``input``: text at four characters a token, token arrays as counted."""
    value = body.get("input")
    items = value if isinstance(value, list) and value and not isinstance(value[0], int) else [value]
    total = 0
    for item in items:
        if isinstance(item, str):
            total += text_tokens(item)
        elif isinstance(item, list):
            total += len(item)
    return total
