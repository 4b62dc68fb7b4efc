"""abstract_text is pylatexenc's rendering of the whole abstract, whichever path computes it."""

from __future__ import annotations

import json
import random

import pylatexenc
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pylatexenc.latex2text import LatexNodes2Text

from pipeline.parse import latex, normalize
from pipeline.parse.latex import abstract_text, fast_latex_to_text, has_latex, latex_to_text
from tests.latex_reference import corpus_sha256, load_abstracts, load_reference

render = abstract_text.__wrapped__  # uncached: each call takes the path under test


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    """The 20,108 real abstracts and pylatexenc's stored renderings of them."""
    papers = load_abstracts()
    _, texts = load_reference(papers)
    return [p["abstract"] for p in papers], texts


# --- the real corpus -------------------------------------------------------------------------


def test_stored_renderings_are_of_this_corpus_and_this_pylatexenc() -> None:
    header, texts = load_reference(load_abstracts())
    assert header["pylatexenc"] == pylatexenc.__version__, "pylatexenc changed: python -m tests.latex_reference"
    assert header["corpus_sha256"] == corpus_sha256()
    assert header["count"] == len(texts) == 20_108


def test_stored_renderings_are_pylatexenc_on_a_sample(corpus: tuple[list[str], list[str]]) -> None:
    """Recomputed live: 250 abstracts pylatexenc changes (LaTeX) and 50 it only re-spaces."""
    abstracts, texts = corpus
    changed = [i for i, (a, t) in enumerate(zip(abstracts, texts, strict=True)) if t != " ".join(a.split())]
    unchanged = sorted(set(range(len(abstracts))) - set(changed))
    rng = random.Random(20261126)
    sample = rng.sample(changed, 250) + rng.sample(unchanged, 50)
    assert [i for i in sample if latex_to_text(abstracts[i]) != texts[i]] == []


def test_abstract_text_is_pylatexenc_on_all_real_abstracts(corpus: tuple[list[str], list[str]]) -> None:
    abstracts, texts = corpus
    differing = [i for i, (a, t) in enumerate(zip(abstracts, texts, strict=True)) if render(a) != t]
    assert differing == []


def test_fast_renderer_is_sure_of_nearly_every_real_abstract(corpus: tuple[list[str], list[str]]) -> None:
    """Speed without a clock: pylatexenc (~100x slower) renders under 1% of the corpus."""
    abstracts, texts = corpus
    fallbacks = 0
    for abstract, text in zip(abstracts, texts, strict=True):
        fast = fast_latex_to_text(abstract)
        if fast is None:
            fallbacks += 1
        else:
            assert fast == text
    assert fallbacks < len(abstracts) // 100


def test_normalize_reexports_the_renderer() -> None:
    assert normalize.abstract_text is latex.abstract_text
    assert normalize.latex_to_text is latex.latex_to_text


# --- each path and construct -----------------------------------------------------------------


def test_latex_signs_are_pylatexenc_specials_and_markup() -> None:
    for sign in ["\\x", "$", "{", "}", "~", "&", "--", "---", "``", "''", "!`", "?`"]:
        assert has_latex(f"a {sign} b"), sign
    for text in ["a^b_c #1 [x] *y* 100%", "it's a 'quote', a - dash, ! and ?", "α → β, naïve"]:
        assert not has_latex(text)
        assert latex_to_text(text) == " ".join(text.split()) == render(text)


FAST = [
    # plain text and whitespace
    ("plain   words\tand\u00a0spaces ", "plain words and spaces"),
    ("a bare 5% and 80% more", "a bare 5% and 80% more"),
    ("one\nline break", "one line break"),
    # inline and display math
    (r"costs $O(n^2)$ with $\alpha$-divergence", "costs O(n^2) with α-divergence"),
    (r"$x_{i}^{2} + y_1$", "x_i^2 + y_1"),
    (r"between $a$$b$ two", "between ab two"),
    (r"display $$\sum_i x_i$$ math", "display ∑_i x_i math"),
    (r"\(a \leq b\) and \[c \geq d\]", "a ≤ b and c ≥ d"),
    (r"$ \alpha \beta $ and $\alpha x$ and $\alpha{x}$", "αβ and α x and αx"),
    (r"$\mathcal{L} = \mathbf{x} \cdot \mathbb{R}$", "ℒ = 𝐱·ℝ"),
    (r"$\mathrm{SO}(3)$, $\text{for all } x$", "SO(3), for all x"),
    (r"$\frac{a}{b}$, $\frac12$, $\sqrt{n}$", "a/b, 1/2, √(n)"),
    (r"$\times \leq \geq \cdot \infty \rightarrow \sim \approx \pm \ell$", "×≤≥·∞→∼≈±ℓ"),
    (r"$\hat{x}$, $\bar y$, $\tilde{\theta}$", "x\u0302, y\u0305, θ\u0303"),  # combining marks
    (r"$\hatβ$ keeps only what follows", "keeps only what follows"),  # \hatβ is one unknown macro
    # text macros, accents, escapes
    (r"an \emph{open}   question, \textbf{bold} and \textit{it}", "an open question, bold and it"),
    (r"\textsc{Name} \textrm{x} \texttt{code} \underline{u}", "Name x u"),
    (r"Erd\H{o}s, G\"odel, Poincar\'e, \c{c}a, na\"{\i}ve", "Erdős, Gödel, Poincaré, ça, naïve"),
    (r"\`a, \^o, \~n, \v{s}, \k{a}, \u{g}, \={o}, \.{z}, \aa, \o, \ss, \l", "à, ô, ñ, š, ą, ğ, ō, ż, å, ø, ß, ł"),
    (r"R\&D costs 5\% \$ \# \_ \{x\}", "R&D costs 5% $ # _ {x}"),
    (r"\LaTeX{} is dropped, \unknown{arg} keeps its group", "is dropped, arg keeps its group"),
    (r"see \cite{a} and \ref{b}, \url{http://x.org/~a}", "see <cit.> and <ref>, <http://x.org/ a>"),
    (r"a\footnote{note} b", "a[note] b"),
    (r"a \"\" double accent, line \\ break", "a \u0308\u0308 double accent, line break"),
    (r"\frac\alpha\beta, \frac{a} ", "α/β, %s/%sa"),  # no second argument: pylatexenc keeps "%s/%s"
    # specials
    (r"``quoted'' -- en --- em, a~b & c", "“quoted” – en — em, a b c"),
    # groups, stray and unclosed braces
    (r"{\em x} {a {nested} group}", "x a nested group"),
    (r"a stray } brace", "a stray brace"),
    (r"an unclosed {group and $math", "an unclosed group and math"),
]


@pytest.mark.parametrize(("source", "text"), FAST)
def test_fast_renderer_construct(source: str, text: str) -> None:
    assert latex_to_text(source) == text
    assert fast_latex_to_text(source) == text
    assert render(source) == text


FALLBACK = [
    r"an unknown \href{http://x}{link} makes pylatexenc raise",  # then latex_to_text renders by runs
    r"verbatim \verb|x|",
    r"an \item",
    r"\texorpdfstring{a}{b}: a callable of the arguments",
    r"\ensuremath{x}: math-mode arguments",
    r"\\% a comment after a line break",
    r"a \begin{equation} x \end{equation} environment",
    r"nested $\text{$x$}$ math",
    r"optional \sqrt[3]{x} argument",
    r"starred \section*{x}",
    "ends in a backslash \\",
    r"a \\* starred and \\[2pt] optional line break",
    r"closing \) without opening",
    "a paragraph\n\n\\textbf{break}",
    r"{" * 100 + "deep" + "}" * 100,
]


@pytest.mark.parametrize("source", FALLBACK)
def test_what_the_fast_renderer_is_not_sure_of_goes_to_pylatexenc(source: str) -> None:
    assert fast_latex_to_text(source) is None
    assert render(source) == latex_to_text(source)


def test_where_pylatexenc_raises_the_runs_are_rendered_one_by_one() -> None:
    """\\href has no rule in pylatexenc's tables: it raises on the whole abstract. The rest of the
    abstract is still rendered, run by run; the run it fails on is kept as it is."""
    source = r"See \href{http://x.org}{our code} with $\alpha$ and \textbf{bold} words."
    assert latex_to_text(source) == r"See \href{http://x.org}{our code} with α and bold words."
    assert render(source) == latex_to_text(source)


def test_where_pylatexenc_raises_the_fast_renderer_renders_the_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Speed without a clock: an abstract with \\href and common LaTeX never reaches pylatexenc (it
    took ~5 ms, 20% of parsing a synthetic listing); its rendering is pylatexenc's, as above."""
    source = r"See \href{http://x.org}{our code} with $\alpha$ and \textbf{bold} words."
    expected = latex_to_text(source)
    calls: list[str] = []
    real = LatexNodes2Text.latex_to_text

    def spy(self: LatexNodes2Text, text: str, **options: object) -> str:
        calls.append(text)
        return real(self, text, **options)

    monkeypatch.setattr(LatexNodes2Text, "latex_to_text", spy)
    assert latex_to_text(source) == expected  # the spy sees pylatexenc's renderer when it is used
    assert calls
    calls.clear()
    assert render(source) == expected
    assert calls == []


@pytest.mark.parametrize(
    "source",
    [
        r"words \" with \" accents",  # the accent takes the next word's first letter
        r"bare % percent \% escaped",
        r"an \unknown macro and \unknown{group}",
        r"unbalanced } and { braces",
        r"\textbf{\href{http://x}{y}}",  # \href in an argument pylatexenc renders: it raises
        r"\texttt{\href{http://x}{y}}",  # \href in an argument pylatexenc ignores: it does not
    ],
)
def test_hostile_inputs_equal_pylatexenc(source: str) -> None:
    assert render(source) == latex_to_text(source)


# --- any LaTeX-ish text -----------------------------------------------------------------------

PIECES = [
    *"abxyz AB12 .,;:()[]*!?#&@^_~%'`-$\\{}",
    "  ", "\t", "\n", "\u00a0", "é", "α", "$$", "``", "''", "--", "---", "!`",
    "\\alpha", "\\beta", "\\Gamma", "\\times", "\\leq", "\\cdot", "\\infty", "\\to", "\\ell", "\\pm", "\\sim",
    "\\textbf", "\\emph", "\\textit", "\\text", "\\texttt", "\\textsc", "\\mathrm", "\\mathbf", "\\mathcal", "\\mathbb",
    "\\frac", "\\sqrt", "\\hat", "\\bar", "\\vec", "\\'", '\\"', "\\`", "\\^", "\\~", "\\c", "\\H", "\\v", "\\i",
    "\\%", "\\&", "\\$", "\\_", "\\#", "\\{", "\\}", "\\\\", "\\,", "\\ ", "\\(", "\\)", "\\[", "\\]",
    "\\cite", "\\ref", "\\url", "\\footnote", "\\href", "\\label", "\\LaTeX", "\\foo", "\\ensuremath", "\\item",
    "\\begin{itemize}", "\\end{itemize}", "\\verb", "\\textcolor", "\\ket", "\\texorpdfstring", "\\hatβ",
]  # fmt: skip


# What sends the fast renderer to pylatexenc at once (comments: \\%, paragraph breaks, environments,
# \verb) left out, so that most examples exercise the fast renderer rather than the fallback.
RENDERED_PIECES = [p for p in PIECES if p not in ("%", "\n", "\\begin{itemize}", "\\end{itemize}", "\\verb")]


@settings(max_examples=1000)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_abstract_text_equals_pylatexenc_on_latexish_text(text: str) -> None:
    event(_path(text))
    assert render(text) == latex_to_text(text)


@settings(max_examples=1000)
@given(st.lists(st.sampled_from(RENDERED_PIECES), max_size=30).map("".join))
def test_abstract_text_equals_pylatexenc_on_common_latex(text: str) -> None:
    event(_path(text))
    assert render(text) == latex_to_text(text)


@settings(max_examples=500)
@given(st.text(alphabet="ab \\${}^_~%'`-&[]*\n", max_size=40))
def test_abstract_text_equals_pylatexenc_on_latex_characters(text: str) -> None:
    event(_path(text))
    assert render(text) == latex_to_text(text)


def _path(text: str) -> str:
    """Which path renders `text` (shown by pytest --hypothesis-show-statistics)."""
    if not has_latex(text):
        return "no LaTeX sign"
    return "pylatexenc" if fast_latex_to_text(text) is None else "fast renderer"


# --- abstract_text on plain examples, the sample and real titles -------------------------------


@pytest.mark.parametrize(
    ("latex", "text"),
    [
        (r"as initiated by \textbf{TinyStories} -- a model", "as initiated by TinyStories – a model"),
        (r"costs $O(n^2)$ with $\alpha$-divergence", "costs O(n^2) with α-divergence"),
        ("improves by 5% on GSM8k, then 80% more", "improves by 5% on GSM8k, then 80% more"),
        (r"an \emph{open}   question", "an open question"),
        ("plain text stays", "plain text stays"),
    ],
)
def test_abstract_text_renders_latex(latex: str, text: str) -> None:
    assert abstract_text(latex) == text


# Well-formed pieces of LaTeX, some spanning several words; any sequence of them is well-formed.
WORDS = st.sampled_from(
    [
        "plain", "words", "GPT-4's", "e.g.,", "(LLMs)", "5%", "\\textbf{TinyStories}", "\\textbf{two words}",
        "$O(n^2)$", "$a + b$", "$$x$$", "``quoted''", "--", "---", "a~b", "\\alpha", "\\LaTeX", "is",
        "R\\&D", "{\\em x}", "\\cite{a}", "$x_1$", "$a^2$", "\\%", "\\emph{open}", "#1", "\\\\",
        "\\textit{a {nested} group}", "$\\{x\\}$",
    ]
)  # fmt: skip


@given(st.lists(WORDS, max_size=25))
def test_abstract_fast_path_equals_pylatexenc_on_the_whole_text(words: list[str]) -> None:
    text = " ".join(words)
    assert abstract_text.__wrapped__(text) == latex_to_text(text)


def test_abstract_fast_path_equals_pylatexenc_on_the_sample() -> None:
    from tests.conftest import GOLD

    for line in GOLD.read_text(encoding="utf-8").splitlines():
        abstract = json.loads(line)["abstract"]
        assert abstract_text.__wrapped__(abstract) == latex_to_text(abstract)


def test_abstract_fast_path_equals_pylatexenc_on_real_titles() -> None:
    from benchmarks.render import load_records

    titles = [r["title"] for r in load_records() if "$" in r["title"] or "\\" in r["title"]]
    assert len(titles) > 500
    assert [t for t in titles if abstract_text.__wrapped__(t) != latex_to_text(t)] == []
