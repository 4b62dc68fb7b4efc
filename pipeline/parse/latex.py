"""Abstracts' LaTeX rendered to plain text: pylatexenc's output, computed by a small exact renderer when it can be."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from pylatexenc import latexwalker, macrospec
from pylatexenc.latex2text import LatexNodes2Text

_FLAGS: dict[str, Any] = {"math_mode": "text", "strict_latex_spaces": False}
_LATEX = LatexNodes2Text(**_FLAGS)
_BARE_PERCENT = re.compile(r"%(?<!\\%)")  # a % not escaped; the literal first makes the search fast

# pylatexenc's own tables: its parser's (which macros take which arguments, which character
# sequences are "specials") and its renderer's (what text each macro and special becomes). The
# fast renderer reads everything from them, so that it agrees with pylatexenc by construction.
_PARSE_DB = latexwalker.get_default_latex_context_db()  # what each LatexWalker is built with
_TEXT_DB = _LATEX.latex_context


def _special_text(chars: str) -> str | None:
    spec = _PARSE_DB.test_for_specials(chars, 0)
    if spec is None or spec.specials_chars != chars or spec.args_parser is not None:
        return None
    text_spec = _TEXT_DB.get_specials_spec(chars)
    if text_spec is None:
        return chars
    repl = text_spec.simplify_repl
    if not isinstance(repl, str) or not repl or ("%" in repl and len(repl) != 1):
        return None
    return repl


_SPECIAL_CHARS = sorted({s.specials_chars for s in _PARSE_DB.iter_specials_specs()}, key=len, reverse=True)
_SPECIALS = {chars: _special_text(chars) for chars in _SPECIAL_CHARS}
_SPECIAL = re.compile("|".join(map(re.escape, _SPECIAL_CHARS)))
_SPECIAL_STARTS = "".join(sorted({re.escape(chars[0]) for chars in _SPECIAL_CHARS}))
# With none of these, pylatexenc gives the text back as it is: no macro, group, math or special
# (``, '', --, ~, &, ...). A bare % is no sign either: latex_to_text escapes it to \%, rendered %.
# Written as one character class and then a check of that character, so that the search skips
# over plain text at the speed of a class scan (an alternation is tried at every position).
_SIGN_CHARS = r"\\${}"
_LATEX_SIGN = re.compile(
    rf"[{_SIGN_CHARS}{_SPECIAL_STARTS}](?:(?<=[{_SIGN_CHARS}])"
    + "".join(f"|(?<={re.escape(c[0])})" + (f"(?={re.escape(c[1:])})" if c[1:] else "") for c in _SPECIAL_CHARS)
    + ")"
)
# A run of characters pylatexenc reads one by one as plain text (spaces included): it stops at
# a backslash, comment, brace, dollar, or where a special starts. Possessive, and each branch
# starts on different characters: the match is linear.
_PLAIN = re.compile(rf"(?:[^\\%{{}}${_SPECIAL_STARTS}]++|(?!{_SPECIAL.pattern})[{_SPECIAL_STARTS}])++")
_LETTERS = re.compile(r"[A-Za-z]+")
_SPACES = re.compile(r"\s*")  # \s is str.isspace, as in pylatexenc's tokenizer
_MATH_CLOSE = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
_DISPLAY = frozenset({"$$", "\\["})
_MAX_DEPTH = 64  # nested groups, arguments and math; deeper goes to pylatexenc, never to a RecursionError
# pylatexenc's test for a format string that takes all arguments in order ("%s") rather than by number.
_PERCENT_S = re.compile("(^|[^%])(%%)*%s")


class _UnsureError(Exception):
    """Raised by the fast renderer on anything it does not reproduce with certainty."""


class _RaisesError(Exception):
    """Raised by the fast renderer where pylatexenc's renderer raises (then latex_to_text keeps the raw text)."""


@dataclass(frozen=True, slots=True)
class _Macro:
    """What the fast renderer knows of one macro: its arguments (parser table) and its text (renderer table)."""

    argspec: str  # per argument, as pylatexenc's parser reads them: "*" star, "[" optional, "{" mandatory
    text_mode: tuple[bool, ...]  # per argument: read in text mode (a $$ in it opens display math)
    no_space: bool  # an optional argument only right after the macro (\\ [x] is no argument)
    bare: bool  # pylatexenc's "bare macro": in math, the spaces after it are kept before plain text
    kind: str  # "text" (a constant), "format" (%-format of the arguments), "join", "call", "raises"
    value: Any  # the constant, the format string or pylatexenc's callable

    @property
    def renders_args(self) -> bool:
        """Whether pylatexenc renders the arguments (a macro rendered as a constant never looks at them)."""
        return self.kind in ("format", "join", "call")


class _Renderer:
    """Stands for pylatexenc's renderer in its accent and math-style callables: the arguments are already text."""

    @staticmethod
    def nodelist_to_text(nodes: list[str]) -> str:
        return "".join(nodes)

    @staticmethod
    def node_arg_to_text(node: Any, k: int) -> str:
        return str(node.nodeargd.argnlist[k]) if node.nodeargd and node.nodeargd.argnlist else ""


_RENDERER = _Renderer()
# pylatexenc's accents (\'e, \"o, \c{c}, \hat{x}, ...) and math styles (\mathbf, \mathcal, ...)
# are closures sharing one code object per family; they only use their argument's text.
_ACCENT_CODE = _TEXT_DB.get_macro_spec("'").simplify_repl.__code__
_STYLE_CODE = _TEXT_DB.get_macro_spec("mathbf").simplify_repl.__code__


def _compile_macro(name: str) -> _Macro | None:
    """The macro as the fast renderer handles it, or None when it should not try."""
    if name in ("begin", "end"):
        return None
    parse_spec = _PARSE_DB.get_macro_spec(name)
    argspec, modes, no_space = "", None, False
    if parse_spec is not None:
        parser = parse_spec.args_parser
        if type(parser) is not macrospec.MacroStandardArgsParser:
            return None
        if getattr(parser, "_like_pylatexenc1x_ignore_leading_star", False):
            return None
        argspec, modes, no_space = parser.argspec, parser.args_math_mode, bool(parser.optional_arg_no_space)
        if modes is not None and (len(modes) != len(argspec) or True in modes):
            return None  # \ensuremath: math-mode parsing outside math
    text_mode = tuple(modes[j] is False if modes else False for j in range(len(argspec)))
    # pylatexenc's legacy view of the arguments: no optional argument and no mandatory one.
    bare = argspec == "" or argspec.lstrip("*") == "["

    def macro(kind: str, value: Any) -> _Macro:
        return _Macro(argspec, text_mode, no_space, bare, kind, value)

    text_spec = _TEXT_DB.get_macro_spec(name)
    if text_spec is None:
        return macro("text", "")
    repl = text_spec.simplify_repl
    if callable(repl):
        code = getattr(repl, "__code__", None)
        if code is _ACCENT_CODE or code is _STYLE_CODE:
            return macro("call", repl) if argspec == "{" else None
        params = inspect.getfullargspec(repl)
        if len(params.args) == 1 and not params.defaults and params.args[0] not in ("l2tobj", "macroname"):
            try:  # a callable of the node alone that ignores it (\% → %)
                value = repl(None)
            except Exception:
                return None
            return macro("text", value or "") if isinstance(value, str | None) else None
        if argspec == "":
            # Without arguments the node is always the same, and the fast path never changes the
            # renderer's state (\title and the like are not handled): what a fresh renderer does
            # with the macro alone, it does everywhere. \href is such a macro: its callable wants
            # two arguments the parser never gives it, so rendering any text holding it raises.
            try:
                LatexNodes2Text(**_FLAGS).latex_to_text("\\" + name)
            except Exception:
                return macro("raises", None)
        return None
    if repl:
        return macro("format" if "%" in repl and len(repl) != 1 else "text", repl)
    return macro("text", "") if text_spec.discard else macro("join", "")


_MACROS: dict[str, _Macro | None] = {}


def _macro(name: str) -> _Macro:
    try:
        macro = _MACROS[name]
    except KeyError:
        macro = _MACROS[name] = _compile_macro(name)
    if macro is None:
        raise _UnsureError
    return macro


def _text(macro: _Macro, args: list[str] | None) -> str:
    """pylatexenc's text for a rendered macro node; `args` None: a node without parsed arguments."""
    if macro.kind == "text":
        return str(macro.value)
    if macro.kind == "join":
        return "".join(args or ())
    if macro.kind == "call":
        node = SimpleNamespace(nodeargs=args, nodeargd=None if args is None else SimpleNamespace(argnlist=args))
        return macro.value(node, l2tobj=_RENDERER) or ""
    if macro.kind == "format":
        args = args or []
        values = tuple(args) if _PERCENT_S.search(macro.value) else {str(j + 1): a for j, a in enumerate(args)}
        try:
            return str(macro.value % values)
        except (TypeError, ValueError):
            return str(macro.value)  # what pylatexenc does, after logging a warning
        except Exception:
            raise _RaisesError from None
    raise _UnsureError  # "raises" without its usual node: not known to raise


class _Parse:
    """One pass over the text that parses it as pylatexenc's LatexWalker does and renders it as its LatexNodes2Text.

    Only what both do with certainty is reproduced: plain text, groups, macros of the tables (with
    arguments in braces or single tokens), specials and math; comments, environments, given
    optional or starred arguments, nested math, paragraph breaks, parse errors other than stray
    or unclosed braces and math, and macros whose text comes from code other than the accent and
    math-style families raise _UnsureError.
    """

    __slots__ = ("n", "s")

    def __init__(self, s: str) -> None:
        self.s = s
        self.n = len(s)

    def macro_name(self, pos: int) -> tuple[str, int, str]:
        """The macro whose backslash is at `pos`: its name, its end and the spaces it swallows after it."""
        s = self.s
        if pos + 1 >= self.n:
            raise _UnsureError  # pylatexenc drops a final backslash with the spaces before it
        first = s[pos + 1]
        if not first.isalpha():
            return first, pos + 2, ""
        # A name is a run of letters in str.isalpha's sense, Greek and accented ones too (\hatβ).
        end = pos + 1
        while True:
            letters = _LETTERS.match(s, end)
            if letters is not None:
                end = letters.end()
            if end < self.n and s[end].isalpha():
                end += 1
            else:
                break
        spaces = _SPACES.match(s, end)
        assert spaces is not None
        return s[pos + 1 : end], spaces.end(), spaces.group()

    def nodes(self, pos: int, stop: str | None, math: bool, dollar: bool, live: bool, depth: int) -> tuple[str, int]:
        """Render from `pos` to the `stop` delimiter ("}", a math closer, or None for the end of text).

        `math`: inside math, where pylatexenc keeps spaces after bare macros and drops space-only
        runs; `dollar`: the parser is in $-math, where $$ reads as two dollars; `live`: pylatexenc
        renders this text (not an argument its macro ignores). Returns the text and the position
        after the stop delimiter.
        """
        if depth > _MAX_DEPTH:
            raise _UnsureError
        s, n = self.s, self.n
        parts: list[str] = []
        after_bare: str | None = None  # the spaces after the previous node, when it is a bare macro
        while True:
            plain = _PLAIN.match(s, pos)
            if plain is not None:
                chars, pos = plain.group(), plain.end()
                if math and after_bare is not None:
                    parts.append(after_bare)
                if not (math and chars.isspace()):
                    parts.append(chars)
                after_bare = None
            if pos >= n:  # pylatexenc closes an open group or math at the end, silently
                return "".join(parts), pos
            ch = s[pos]
            if ch == "\\":
                name, end, post_space = self.macro_name(pos)
                if len(name) == 1 and name in "()[]":
                    token = "\\" + name
                else:
                    text, pos, bare = self.macro(_macro(name), end, math, dollar, live, depth)
                    parts.append(text)
                    after_bare = post_space if bare else None
                    continue
            elif ch == "{":
                text, pos = self.nodes(pos + 1, "}", math, dollar, live, depth + 1)
                parts.append(text)
                after_bare = None
                continue
            elif ch == "}":
                if stop == "}":
                    return "".join(parts), pos + 1
                pos += 1  # pylatexenc skips a stray closing brace (a parse error, tolerated): no node
                continue
            elif ch == "$":
                token = "$$" if s.startswith("$$", pos) and not dollar else "$"
            elif ch == "%":
                raise _UnsureError  # a comment: a % after \\ (latex_to_text escapes every other one)
            else:  # _PLAIN stopped here: a special starts
                text, pos = self.special(pos)
                parts.append(text)
                after_bare = None
                continue
            # A math delimiter.
            if token == stop:
                return "".join(parts), pos + len(token)
            text, pos = self.math_span(token, pos, math, live, depth)
            parts.append(text)
            after_bare = None

    def math_span(self, token: str, pos: int, math: bool, live: bool, depth: int) -> tuple[str, int]:
        """The math that `token` opens at `pos`, as pylatexenc renders it (inline math stripped,
        display math indented on lines of its own), and the position after its closer."""
        if math or token not in _MATH_CLOSE:
            raise _UnsureError  # nested math, or a closing delimiter without its opening
        inner, pos = self.nodes(pos + len(token), _MATH_CLOSE[token], True, token == "$", live, depth + 1)
        inner = inner.strip()
        return ("\n    " + inner.replace("\n", "\n    ") + "\n" if token in _DISPLAY else inner), pos

    def macro(self, macro: _Macro, pos: int, math: bool, dollar: bool, live: bool, depth: int) -> tuple[str, int, bool]:
        """The macro whose name ends at `pos`, with its arguments: its text, its end and whether it is bare."""
        if macro.kind == "raises" and live:
            raise _RaisesError
        s, n = self.s, self.n
        args: list[str] = []
        end = pos
        for kind, text_mode in zip(macro.argspec, macro.text_mode, strict=True):
            at = self.skip_spaces(end)
            if kind != "[" and at >= n:
                # pylatexenc's argument reader meets the end of text: the macro keeps no argument,
                # and the arguments it had read are read again, as text after it.
                return (_text(macro, None) if live else ""), pos, True
            if kind == "{":
                text, end = self.expression(at, math, dollar and not text_mode, live and macro.renders_args, depth + 1)
                args.append(text)
            elif kind == "[" and macro.no_space and at > end:
                args.append("")
            elif at < n and s[at] == kind:
                raise _UnsureError  # a star or an optional argument given
            else:
                args.append("")
        return (_text(macro, args) if live else ""), end, macro.bare

    def expression(self, pos: int, math: bool, dollar: bool, live: bool, depth: int) -> tuple[str, int]:
        """One mandatory argument at `pos` (spaces skipped): a group, a macro, a special or one character."""
        s = self.s
        ch = s[pos]
        if ch == "{":
            return self.nodes(pos + 1, "}", math, dollar, live, depth + 1)
        if ch == "\\":
            name, end, _ = self.macro_name(pos)
            if len(name) == 1 and name in "()[]":
                raise _UnsureError
            # A macro as an argument is read without arguments of its own.
            macro = _macro(name)
            return (_text(macro, None) if live else ""), end
        if ch == "}":
            return "", pos  # pylatexenc reads an empty argument and leaves the brace to its caller
        if ch in "$%":
            raise _UnsureError
        if _SPECIAL.match(s, pos):
            return self.special(pos)
        return ch, pos + 1

    def special(self, pos: int) -> tuple[str, int]:
        """The special (``, --, ~, ...) that starts at `pos`: its text and its end."""
        special = _SPECIAL.match(self.s, pos)
        assert special is not None
        text = _SPECIALS[special.group()]
        if text is None:
            raise _UnsureError
        return text, special.end()

    def skip_spaces(self, pos: int) -> int:
        spaces = _SPACES.match(self.s, pos)
        assert spaces is not None
        return spaces.end()


def has_latex(text: str) -> bool:
    """Whether pylatexenc could render `text` as anything but `text` with its whitespace collapsed."""
    return _LATEX_SIGN.search(text) is not None


def _fast_text(latex: str) -> str:
    """`latex_to_text(latex)` computed without pylatexenc; raises _UnsureError when not sure of it,
    and _RaisesError when pylatexenc raises on the whole text."""
    if not has_latex(latex):
        return " ".join(latex.split())
    if "\n\n" in latex:
        raise _UnsureError  # paragraph breaks: tokens of their own in pylatexenc
    escaped = _BARE_PERCENT.sub(r"\\%", latex) if "%" in latex else latex
    text, _ = _Parse(escaped).nodes(0, None, False, False, True, 0)
    return " ".join(text.split())


def fast_latex_to_text(latex: str) -> str | None:
    """`latex_to_text(latex)` computed without pylatexenc, or None when the fast renderer is not sure of it."""
    try:
        return _fast_text(latex)
    except (_UnsureError, _RaisesError):  # pylatexenc raises: latex_to_text renders the text by runs
        return None


def _whole(latex: str) -> str | None:
    """pylatexenc's rendering of `latex` (a bare % kept as a percent sign), or None when it raises."""
    try:
        return str(_LATEX.latex_to_text(_BARE_PERCENT.sub(r"\\%", latex)))
    except Exception:  # e.g. IndexError on \href, which its tables do not describe
        return None


# Where pylatexenc raises on the whole text: the runs of words that hold LaTeX, each closed at a
# balanced brace and math level, are rendered one by one.
_RUN_SIGN = re.compile(r"[\\$%{}~^_&#]|``|''|--")
_OPEN = re.compile(r"(?<!\\)\{")
_CLOSE = re.compile(r"(?<!\\)\}")
_MATH = re.compile(r"(?<!\\)\$\$?")
_ENDS_IN_MACRO = re.compile(r"\\[A-Za-z]+\Z")


def _run_text(run: str) -> str:
    text = _whole(run)
    return " ".join((run if text is None else text).split())  # a run pylatexenc fails on stays as it is


def _fast_run_text(run: str) -> str:
    """`_run_text(run)`, by the fast renderer when it is sure of it."""
    try:
        return _fast_text(run)
    except _RaisesError:
        return " ".join(run.split())
    except _UnsureError:
        return _run_text(run)


def by_runs(latex: str, run_text: Callable[[str], str] = _run_text) -> str:
    """`latex` with plain words kept and each run of words holding LaTeX (closed at a balanced brace
    and math level) rendered by `run_text` (pylatexenc) on its own; a run it fails on is kept as it is."""
    out: list[str] = []
    run: list[str] = []
    depth = 0
    in_math = False
    for word in latex.split():
        if not run and not _RUN_SIGN.search(word):
            out.append(word)
            continue
        run.append(word)
        depth += len(_OPEN.findall(word)) - len(_CLOSE.findall(word))
        in_math ^= len(_MATH.findall(word)) % 2 == 1
        # A macro at the end of a run may take the next word as its argument: keep reading.
        if depth <= 0 and not in_math and not _ENDS_IN_MACRO.search(word):
            out.append(run_text(" ".join(run)))
            run, depth = [], 0
    if run:
        out.append(run_text(" ".join(run)))
    return " ".join(part for part in out if part)


def latex_to_text(latex: str) -> str:
    """pylatexenc's rendering of `latex` with whitespace collapsed (a bare % kept as a percent sign).

    Where pylatexenc raises on the whole text (72 of 20,108 real abstracts: it has no rule for
    ``\\href``), the runs of words that hold LaTeX are rendered one by one instead, and a run it
    still fails on is kept as it is: the rest of the abstract is rendered all the same.
    """
    text = _whole(latex)
    return by_runs(latex) if text is None else " ".join(text.split())


# Small: real abstracts are distinct, so a large memo would only hold a worker's memory.
@lru_cache(maxsize=1 << 10)
def abstract_text(abstract: str) -> str:
    """The abstract with LaTeX markup rendered to plain Unicode (``\\textbf{x}`` → x, ``$\\alpha$`` → α).

    Exactly `latex_to_text` of the whole abstract. pylatexenc reads character by character (~4 ms
    for a LaTeX-heavy abstract): text with no LaTeX sign is only re-spaced, the common LaTeX goes
    through the fast renderer, and so do the runs of an abstract pylatexenc raises on (\\href);
    only what the fast renderer is not sure of goes to pylatexenc.
    """
    try:
        return _fast_text(abstract)
    except _RaisesError:  # pylatexenc would raise on the whole text too, after reading all of it
        return by_runs(abstract, _fast_run_text)
    except _UnsureError:
        return latex_to_text(abstract)
