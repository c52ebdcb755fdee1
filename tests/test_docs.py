"""Every command in the README and the docs runs as written, and every link and path is there.

Shell blocks (```sh) are read line by line, and every line must be a command this test knows
how to check: `idstitch` (also `.venv/bin/idstitch` and `python -m cli`) must parse with the
real argument parser, abbreviations refused; `make` targets must exist, and what `ARGS=` passes
must parse too; scripts and benchmarks must exist and know the options used; grpcurl calls
must name a method of the API, with a `-d` body that decodes into its request message as
grpcurl decodes it (strictly: an unknown field fails). The grpcurl calls are then made, in
reading order, against a real in-process server, with the metadata their `-H` options give
(`$(cat var/admin-token)` read from that server's data directory) and nothing else. Commands
in inline code (`idstitch ...`, `make ...`, `python scripts/...`) are checked the same way,
leniently (placeholders such as FILE are allowed): the subcommand, target or script exists and
knows every option named.

Relative links must point at files that exist, and their #anchors at headings there; repo
paths in inline code (`linkage/visitor/_scorer.py`) must exist. The configuration page's keys
must be keys the service accepts, and its TOML examples must load. Output examples go in
```text blocks; a command in a block of another kind is an error.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

import linkage
from cli._main import build_parser
from server._config import ServerConfig, load_settings
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import REPO, ThreadServer

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"]
README_MAX_LINES = 250

_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\]\(([^)\s]*)\)")
_INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*$", re.MULTILINE)
_COMMAND_WORDS = ("idstitch", "make", "grpcurl", "python", "python3", ".venv/bin/")
# Repo paths in inline code: files and folders of these top-level folders, and any `.py`.
_REPO_DIRS = ("cli", "server", "linkage", "training", "tests", "scripts", "benchmarks", "proto", "docs", "requirements")
# Written by the code when it runs, so not in a fresh checkout.
_OUTPUTS = ("benchmarks/results/", "var/")
_GRPCURL_VALUE_OPTIONS = {"-d", "-H", "-rpc-header", "-proto", "-import-path", "-protoset", "-max-time", "-format"}
_GRPCURL_FLAGS = {"-plaintext", "-v", "-emit-defaults", "-format-error"}


# --- reading the pages -------------------------------------------------------------------


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _prose(page: Path) -> str:
    """The page without its fenced blocks."""
    return _FENCE.sub("", _text(page))


def _commands(page: Path) -> Iterator[list[str]]:
    for language, block in _FENCE.findall(_text(page)):
        if language != "sh":
            continue
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                words = words[1:]  # FOO=bar command
            if words:
                yield words


def _all_commands() -> list[tuple[str, list[str]]]:
    return [(page.name, words) for page in PAGES for words in _commands(page)]


def _idstitch_args(words: list[str]) -> list[str] | None:
    """The arguments after the program if `words` runs the `idstitch` command, else None."""
    if words[0] in ("idstitch", ".venv/bin/idstitch"):
        return words[1:]
    if words[0] in ("python", "python3", ".venv/bin/python") and words[1:3] == ["-m", "cli"]:
        return words[3:]
    return None


def _script(words: list[str]) -> str | None:
    if words[0] in ("python", "python3", ".venv/bin/python") and len(words) > 1 and words[1].endswith(".py"):
        return words[1]
    return None


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, heading in _HEADING.findall(_prose(page)):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


# --- what the commands are checked against -------------------------------------------------


def _strict(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """No abbreviated options (`--dat` would otherwise pass for `--data-dir`), subcommands included."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _strict(sub)
    return parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the idstitch parser has no subcommands")


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def _makefile() -> str:
    return (REPO / "Makefile").read_text(encoding="utf-8")


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", _makefile(), re.MULTILINE))


def _recipe_taking_args(target: str) -> list[str] | None:
    """The recipe line of `target` that passes $(ARGS) on, as words without the $(ARGS)."""
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n?)+)", _makefile(), re.MULTILINE)
    assert match, f"Makefile: no recipe for {target}"
    for line in match.group(1).splitlines():
        if "$(ARGS)" in line:
            return [w.replace("$(BIN)/", ".venv/bin/") for w in line.replace("$(ARGS)", "").split()]
    return None


def _flags(words: list[str]) -> list[str]:
    return [w.split("=")[0] for w in words if w.startswith("--")]


# --- checks, shared by the tests below (each returns what is wrong, empty when nothing) ---------


def _check_idstitch(args: list[str]) -> str | None:
    parser = _strict(build_parser())
    try:
        parser.parse_args(args)
    except SystemExit as exit_:
        return f"does not parse with the idstitch parser (exit {exit_.code})"
    return None


def _check_idstitch_leniently(args: list[str]) -> str | None:
    subcommands = _subcommands()
    if not args or args[0] not in subcommands:
        return f"idstitch has no subcommand {args[0] if args else '(none)'}"
    parser, words = subcommands[args[0]], args[1:]
    for action in parser._actions:  # `idstitch token add ...`: the options are the nested command's
        if isinstance(action, argparse._SubParsersAction) and words and words[0] in action.choices:
            parser, words = action.choices[words[0]], words[1:]
    unknown = set(_flags(words)) - _options(parser)
    return f"idstitch {args[0]} has no option {sorted(unknown)}" if unknown else None


def _check_script(script: str, args: list[str]) -> str | None:
    path = REPO / script
    if not path.is_file():
        return f"{script} does not exist"
    text = path.read_text(encoding="utf-8")
    unknown = [flag for flag in _flags(args) if f'"{flag}"' not in text]
    return f"{script} has no option {unknown}" if unknown else None


def _check_make(args: list[str], lenient: bool = False) -> str | None:
    named = [w for w in args if "=" not in w] or ["serve"]  # the first target is the default
    missing = set(named) - _make_targets()
    if missing:
        return f"the Makefile has no target {sorted(missing)}"
    passed = [w.split("=", 1)[1] for w in args if w.startswith("ARGS=")]
    if not passed:
        return None
    recipe = _recipe_taking_args(named[0])
    if recipe is None:
        return f"make {named[0]} does not pass ARGS on"
    return _check_words([*recipe, *shlex.split(passed[0])], lenient)


def _check_words(words: list[str], lenient: bool = False) -> str | None:
    """What is wrong with a documented command line; None when it holds."""
    if (args := _idstitch_args(words)) is not None:
        return _check_idstitch_leniently(args) if lenient else _check_idstitch(args)
    if (script := _script(words)) is not None:
        return _check_script(script, words[2:])
    if words[0] == "make":
        return _check_make(words[1:], lenient)
    if words[0] == "grpcurl":
        return _check_grpcurl(words)
    return "is no command this test can check (idstitch, make, grpcurl, python SCRIPT)"


def _grpcurl_parts(words: list[str]) -> tuple[str | None, list[str], list[str]]:
    """(the -d body, the positional words, the -H headers) of a grpcurl command line."""
    body = None
    positional = []
    headers = []
    rest = iter(words[1:])
    for word in rest:
        if word in _GRPCURL_VALUE_OPTIONS:
            value = next(rest, None)
            if value is None:
                raise ValueError(f"{word} needs a value")
            if word == "-d":
                body = value
            elif word in ("-H", "-rpc-header"):
                headers.append(value)
        elif word.startswith("-"):
            if word not in _GRPCURL_FLAGS:
                raise ValueError(f"unknown grpcurl option {word}")
        else:
            positional.append(word)
    return body, positional, headers


def _method(path: str) -> tuple[str | None, MethodDescriptor | None]:
    service_name, _, method_name = path.replace("/", ".").rpartition(".")
    if service_name != SERVICE.full_name:
        return f"unknown service {service_name}", None
    method = SERVICE.methods_by_name.get(method_name)
    if method is None:
        return f"{service_name} has no method {method_name}", None
    return None, method


def _messages(body: str, message_type: type[Message]) -> list[Message]:
    """The request messages of a -d body (several JSON objects one after another for a stream)."""
    decoder = json.JSONDecoder()
    messages = []
    at = 0
    while at < len(body.strip()):
        _, end = decoder.raw_decode(body, at)
        messages.append(json_format.Parse(body[at:end], message_type()))
        at = end
        while at < len(body) and body[at].isspace():
            at += 1
    return messages


def _found(find: Callable[[str], object], symbol: str) -> bool:
    try:
        find(symbol)
    except KeyError:
        return False
    return True


def _check_grpcurl(words: list[str]) -> str | None:
    try:
        body, positional, headers = _grpcurl_parts(words)
    except ValueError as error:
        return str(error)
    if any(":" not in header for header in headers):
        return f"a -H header is 'name: value': {headers}"
    if len(positional) < 2:
        return "grpcurl needs an address and a method (or list / describe)"
    address, verb, *more = positional
    if not re.fullmatch(r"[\w.-]+:\d+", address):
        return f"{address} is no host:port"
    if verb in ("list", "describe"):
        pool = pb.DESCRIPTOR.pool
        finders = (pool.FindServiceByName, pool.FindMethodByName, pool.FindMessageTypeByName, pool.FindEnumTypeByName)
        for symbol in more:
            if not any(_found(find, symbol) for find in finders):
                return f"{symbol} is no symbol of the API"
        return None
    if more:
        return f"unexpected words after the method: {more}"
    wrong, method = _method(verb)
    if method is None:
        return wrong
    try:
        _messages(body or "{}", getattr(pb, method.input_type.name))
    except (json_format.ParseError, json.JSONDecodeError) as error:
        return f"the -d body is no {method.input_type.name}: {error}"
    return None


# --- the tests ---------------------------------------------------------------------------


def test_the_readme_is_a_front_door() -> None:
    lines = _text(REPO / "README.md").count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; long material belongs under docs/"


def test_every_page_has_commands_and_the_reader_finds_them() -> None:
    kinds = {words[0] for _, words in _all_commands()}
    assert {"make", "idstitch", "grpcurl"} <= kinds
    readme = _text(REPO / "README.md")
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in readme, f"README.md's documentation list misses docs/{page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_shell_command_holds(page: Path) -> None:
    wrong = [f"`{shlex.join(w)}`: {why}" for w in _commands(page) if (why := _check_words(w))]
    assert not wrong, f"{page.name}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_in_inline_code_holds(page: Path) -> None:
    wrong = []
    for span in _INLINE.findall(_prose(page)):
        span = span.replace("\n", " ")
        if not re.match(r"(idstitch|make|python3?|\.venv/bin/\w+) ", span) or "<" in span:
            continue
        try:
            words = shlex.split(span)
        except ValueError:
            continue
        if words[0].startswith("python") and _script(words) is None and _idstitch_args(words) is None:
            continue
        if why := _check_words(words, lenient=True):
            wrong.append(f"`{span}`: {why}")
    assert not wrong, f"{page.name}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_are_in_sh_blocks_and_output_in_text_blocks(page: Path) -> None:
    for language, block in _FENCE.findall(_text(page)):
        if language in ("sh", "toml"):
            continue
        first = next((line.strip() for line in block.splitlines() if line.strip()), "")
        assert not first.startswith(_COMMAND_WORDS), (
            f"{page.name}: a ```{language} block starts with a command ({first!r}): make it ```sh"
        )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_at_files_and_headings(page: Path) -> None:
    for target in _LINK.findall(_prose(page)):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target} goes nowhere"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: {linked.name} has no heading #{anchor}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_repo_paths_in_inline_code_exist(page: Path) -> None:
    missing = []
    for span in _INLINE.findall(_prose(page)):
        for token in re.findall(r"[\w./*-]+", span):
            token = token.rstrip(".")
            is_repo_path = token.endswith(".py") or token.startswith(tuple(f"{d}/" for d in _REPO_DIRS))
            if not is_repo_path or token.startswith(_OUTPUTS) or "*" in token:
                continue
            # docs/architecture.md names modules inside linkage/ relative to it, in its table
            if not any((base / token).exists() for base in (REPO, REPO / "linkage")):
                missing.append(token)
    assert not missing, f"{page.name}: no such path in the repo: {sorted(set(missing))}"


def _metadata(headers: list[str], data_dir: Path) -> list[tuple[str, str]]:
    """The -H headers as gRPC metadata, `$(cat var/FILE)` read from the server's `data_dir`."""

    def cat(match: re.Match[str]) -> str:
        path = Path(match.group(1))
        assert path.parts[0] == "var", f"{path}: the docs read a data-directory file under var/"
        return data_dir.joinpath(*path.parts[1:]).read_text().strip()

    metadata = []
    for header in headers:
        name, _, value = header.partition(":")
        metadata.append((name.strip().lower(), re.sub(r"\$\(cat ([^)\s]+)\)", cat, value.strip())))
    return metadata


def test_the_grpcurl_calls_work_against_a_real_server(tmp_path: Path) -> None:
    calls = []
    for page, words in _all_commands():
        if words[0] == "grpcurl":
            body, positional, headers = _grpcurl_parts(words)
            if positional[1] not in ("list", "describe"):
                calls.append((page, positional[1], body or "{}", headers))
    assert len(calls) >= 4
    server = ThreadServer(tmp_path / "data")
    # A channel of its own, without the token the server's channel sends: only the -H headers.
    channel = grpc.insecure_channel(server.target)
    try:
        for page, path, body, headers in calls:
            wrong, method = _method(path)
            assert method is not None, f"{page}: {wrong}"
            request_type = getattr(pb, method.input_type.name)
            response_type = getattr(pb, method.output_type.name)
            requests = _messages(body, request_type)
            name = f"/{SERVICE.full_name}/{method.name}"
            kind = (method.client_streaming, method.server_streaming)
            call = {
                (False, False): channel.unary_unary,
                (False, True): channel.unary_stream,
                (True, False): channel.stream_unary,
                (True, True): channel.stream_stream,
            }[kind](
                name, request_serializer=request_type.SerializeToString, response_deserializer=response_type.FromString
            )
            metadata = _metadata(headers, server.data_dir)
            try:
                if kind[0]:
                    answer = call(iter(requests), timeout=10, metadata=metadata)
                else:
                    (request,) = requests
                    answer = call(request, timeout=10, metadata=metadata)
                if kind[1]:
                    list(answer)
            except grpc.RpcError as error:
                pytest.fail(f"{page}: {path} {body} failed: {error.code()} {error.details()}")
    finally:
        channel.close()
        server.stop()


# --- the configuration page ------------------------------------------------------------------

CONFIGURATION = REPO / "docs" / "configuration.md"


def _documented_keys() -> dict[str, set[str]]:
    """Keys in the tables under each `## `[table]`` heading of the configuration page."""
    keys: dict[str, set[str]] = {}
    table = None
    for line in _prose(CONFIGURATION).splitlines():
        if heading := re.fullmatch(r"#+\s+`\[([a-z_]+)[^\]]*\]`", line):
            table = heading.group(1)
            keys[table] = set()
        elif line.startswith("#"):
            table = None
        elif table and (row := re.match(r"\|\s*`([a-z_]+)`\s*\|", line)):
            keys[table].add(row.group(1))
    return keys


def _accepted(table: str, key: str, tmp_path: Path) -> bool:
    """Whether the service knows `key` in `table` (it refuses unknown keys by name)."""
    header = "[namespaces.docs_test]" if table == "namespaces" else f"[{table}]"
    config = tmp_path / f"{table}-{key}.toml"
    config.write_text(f'{header}\n{key} = "x"\n', encoding="utf-8")
    try:
        load_settings(config, data_dir=tmp_path)
    except Exception as error:  # a known key with a wrong value may fail any way; only the name matters
        return "unknown keys" not in str(error)
    return True


def test_the_configuration_page_names_only_keys_the_service_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDSTITCH_HASH_SECRET", "docs-test")
    keys = _documented_keys()
    assert set(keys) == {"server", "identity", "namespaces"}, keys
    assert {f.name for f in fields(ServerConfig)} - {"bench_noop"} <= keys["server"], "a [server] key is missing"
    assert {f.name for f in fields(linkage.NamespaceConfig)} - {"name"} <= keys["namespaces"]
    for table, names in keys.items():
        for key in sorted(names):
            assert _accepted(table, key, tmp_path), f"configuration.md: [{table}] {key} is refused"


def test_the_configuration_examples_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDSTITCH_HASH_SECRET", "docs-test")
    examples = [block for language, block in _FENCE.findall(_text(CONFIGURATION)) if language == "toml"]
    examples.append((REPO / "idstitch.example.toml").read_text(encoding="utf-8"))
    for n, example in enumerate(examples):
        config = tmp_path / f"example-{n}.toml"
        config.write_text(example, encoding="utf-8")
        load_settings(config, data_dir=tmp_path)
