"""The documentation says what the programs do: every option a program's
--help lists is in its man page's synopsis and has an entry there, and
every option its man page lists is in its --help; the README's synopses
and the server's option table list them too. (The man pages are read
from their troff source, so that man itself is not needed.)"""
import os
import re
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MAN = os.path.join(HERE, "..", "..", "man")
PROGRAMS = ["enchufe-server", "enchufe-cli", "enchufe-bench"]
OPTION = re.compile(r"(?<![\w/-])(--[a-z][a-z0-9-]*|-[A-Za-z])(?![\w-])")


def help_groups(bin_dir, program):
    """Each option of --help with its other spelling: [{"-v", "--verbose"}, ...]."""
    out = subprocess.run([os.path.join(bin_dir, program), "--help"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    # Options are the lines' first column (an option, or two, before the
    # description); a description may name other programs' options.
    groups = []
    for line in out.stdout.splitlines():
        m = re.match(r"\s+((?:-[A-Za-z], )?--?[a-z][\w-]*)", line)
        if m:
            groups.append(set(OPTION.findall(m.group(1))))
    return groups


def help_options(bin_dir, program):
    return set().union(*help_groups(bin_dir, program))


def unnamed(groups, found):
    """The groups not one of whose spellings is in found."""
    return sorted("/".join(sorted(g)) for g in groups if not g & found)


def man_source(program):
    with open(os.path.join(MAN, f"{program}.1")) as f:
        text = f.read().replace("\\-", "-")
    return re.sub(r"\\f[BIRP]", "", text)


def man_synopsis(program):
    m = re.search(r"^\.SH SYNOPSIS\n(.*?)^\.SH", man_source(program), re.M | re.S)
    return set(OPTION.findall(m.group(1)))


def man_entries(program):
    """The options of each entry: the line after .TP."""
    found = set()
    for entry in re.findall(r"^\.TP\n(.*)$", man_source(program), re.M):
        found.update(OPTION.findall(entry))
    return found


def readme_section(title):
    with open(os.path.join(HERE, "..", "..", "README.md")) as f:
        text = f.read()
    m = re.search(rf"^## {re.escape(title)}\n(.*?)^## ", text, re.M | re.S)
    return m.group(1)


def readme_synopsis(program):
    block = re.search(r"```\n(.*?)```", readme_section(program), re.S).group(1)
    return set(OPTION.findall(block))


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_option_in_help_is_in_the_man_pages_synopsis(bin_dir, program):
    missing = unnamed(help_groups(bin_dir, program), man_synopsis(program))
    assert not missing, f"{program}: in --help, not in the man page's synopsis: {missing}"


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_option_in_help_has_an_entry_in_the_man_page(bin_dir, program):
    missing = help_options(bin_dir, program) - man_entries(program)
    assert not missing, f"{program}: in --help, no entry in the man page: {sorted(missing)}"


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_option_in_the_man_page_is_in_help(bin_dir, program):
    extra = (man_synopsis(program) | man_entries(program)) - help_options(bin_dir, program)
    assert not extra, f"{program}: in the man page, not in --help: {sorted(extra)}"


@pytest.mark.parametrize("program", ["enchufe-server", "enchufe-cli"])
def test_every_option_in_help_is_in_the_readmes_synopsis(bin_dir, program):
    missing = unnamed(help_groups(bin_dir, program), readme_synopsis(program))
    assert not missing, f"README, {program}: not in the synopsis: {missing}"


def test_the_readmes_server_table_has_every_option(bin_dir):
    rows = set()
    for line in readme_section("enchufe-server").splitlines():
        if line.startswith("| `"):
            rows.update(OPTION.findall(line.split("|")[1]))
    missing = unnamed(help_groups(bin_dir, "enchufe-server"), rows)
    assert not missing, f"README, enchufe-server's table lacks: {missing}"
