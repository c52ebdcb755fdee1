"""Every command in the README and the docs runs as written.

Shell blocks (```sh) are read line by line: `idstitch` commands must parse with the real
argument parser, `make` targets must exist, scripts and benchmarks must exist and know the
options used, and the grpcurl calls are made, in the README's order, against a real server
with a real gRPC client (the JSON decoded as grpcurl decodes it, into the request message).
Relative links must point at files that exist.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from cli._main import build_parser
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from tests._servers import REPO, ThreadServer

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def _commands(page: Path) -> Iterator[list[str]]:
    for block in _BLOCK.findall(page.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                yield words


def _all_commands() -> list[tuple[str, list[str]]]:
    return [(page.name, words) for page in PAGES for words in _commands(page)]


def test_the_readme_is_a_front_door() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < 250, f"README.md has {lines} lines; long material belongs under docs/"


def test_every_page_has_commands_and_the_reader_finds_them() -> None:
    kinds = {words[0] for _, words in _all_commands()}
    assert {"make", "idstitch", "grpcurl"} <= kinds


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_at_files(page: Path) -> None:
    for target, _ in _LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name}: link to {target} goes nowhere"


def test_every_idstitch_command_parses() -> None:
    parser = build_parser()
    checked = 0
    for page, words in _all_commands():
        if words[0] == "idstitch":
            try:
                parser.parse_args(words[1:])
            except SystemExit as exit_:
                pytest.fail(f"{page}: `{shlex.join(words)}` does not parse (exit {exit_.code})")
            checked += 1
    assert checked >= 8


def test_every_make_target_and_script_exists() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    for page, words in _all_commands():
        if words[0] == "make":
            named = [w for w in words[1:] if "=" not in w] or ["serve"]
            assert set(named) <= targets, f"{page}: `{shlex.join(words)}` names no Makefile target"
        elif words[0] in ("python", "python3") and words[1].endswith(".py"):
            script = REPO / words[1]
            assert script.is_file(), f"{page}: {words[1]} does not exist"
            text = script.read_text(encoding="utf-8")
            for flag in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
                assert f'"{flag}"' in text, f"{page}: {words[1]} has no option {flag}"


def _grpcurl_calls() -> list[tuple[str, str, str]]:
    """(page, method, JSON body) of every grpcurl call with a method, in reading order."""
    calls = []
    for page, words in _all_commands():
        if words[0] != "grpcurl" or "/" not in words[-1]:
            continue
        body = words[words.index("-d") + 1] if "-d" in words else "{}"
        calls.append((page, words[-1], body))
    return calls


def test_the_grpcurl_calls_work_against_a_real_server(tmp_path: Path) -> None:
    calls = _grpcurl_calls()
    assert len(calls) >= 4
    service = pb.DESCRIPTOR.services_by_name["IdentityService"]
    server = ThreadServer(tmp_path / "data")
    try:
        for page, path, body in calls:
            service_name, method_name = path.split("/")
            assert service_name == service.full_name, f"{page}: unknown service {service_name}"
            method = service.methods_by_name.get(method_name)
            assert method is not None, f"{page}: {service_name} has no method {method_name}"
            request_type = getattr(pb, method.input_type.name)
            request = json_format.Parse(body, request_type())
            response_type = getattr(pb, method.output_type.name)
            call = server.channel.unary_unary(
                f"/{path}",
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )
            try:
                call(request, timeout=10)
            except grpc.RpcError as error:
                pytest.fail(f"{page}: {method_name} {body} failed: {error.code()} {error.details()}")
    finally:
        server.stop()
