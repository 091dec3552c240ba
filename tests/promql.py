"""A small PromQL reader for checking dashboards against what ``/metrics`` exports.

``parse(text)`` reads the subset of PromQL dashboards use (selectors with matchers and ranges,
function calls, aggregations with ``by``/``without``, binary operators with PromQL's
precedence, ``bool``, ``on``/``ignoring``, ``group_left``/``group_right``, ``offset``) into a
tree, and raises ``PromQLError`` on anything else, so an unsupported construct fails loudly
instead of being skipped. ``check(tree, exported)`` walks the tree against the exported sample
names and their label names (``exported_series``) and returns the problems it finds, with the
labels the expression's result keeps (so a legend's ``{{label}}`` can be checked too):

- every metric name must be exported, every label in a matcher must be one of its labels;
- ``by (...)`` labels must exist on what is aggregated; ``histogram_quantile`` needs ``le``;
- range functions (``rate``...) need a range selector, and ``rate``/``increase``/``irate`` a
  counter-like series (``_total``, ``_bucket``, ``_count``, ``_sum``), never a gauge;
- two vectors combined one-to-one without ``on``/``ignoring`` must keep the same labels, or no
  series would ever match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "group"}
PARAM_AGGREGATIONS = {"topk", "bottomk", "quantile", "count_values"}
RANGE_FUNCTIONS = {
    "rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time", "quantile_over_time",
}
COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets"}
SCALAR_FUNCTIONS = {"time", "pi"}
VECTOR_FUNCTIONS = {"abs", "ceil", "floor", "round", "exp", "ln", "log2", "log10", "sqrt", "clamp", "clamp_min", "clamp_max", "sort", "sort_desc", "timestamp"}
SET_OPERATORS = {"or", "and", "unless"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"} | SET_OPERATORS
# Binary operators by precedence, lowest first (PromQL: or < and/unless < comparisons < +- < */% < ^).
PRECEDENCE = [{"or"}, {"and", "unless"}, {"==", "!=", ">", "<", ">=", "<="}, {"+", "-"}, {"*", "/", "%"}, {"^"}]
COMPARISONS = PRECEDENCE[2]
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")

_TOKEN = re.compile(
    r"\s*(?:(?P<range>\[\s*(?:\d+[smhdwy])+\s*\])|(?P<string>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<duration>(?:\d+[smhdwy])+(?![A-Za-z0-9_]))|(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<op>==|!=|>=|<=|=~|!~|[-+*/%^(){},<>=]))"
)


class PromQLError(ValueError):
    pass


@dataclass
class Number:
    value: float


@dataclass
class String:
    value: str


@dataclass
class Selector:
    name: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, operator, value)
    range: str | None = None


@dataclass
class Call:
    function: str
    args: list


@dataclass
class Aggregation:
    operator: str
    grouping: str | None  # "by" | "without" | None
    labels: list[str]
    args: list


@dataclass
class Binary:
    operator: str
    left: object
    right: object
    matching: str | None = None  # "on" | "ignoring" | None
    matching_labels: list[str] = field(default_factory=list)
    group: str | None = None  # "group_left" | "group_right" | None


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        found = _TOKEN.match(text, position)
        if not found or found.end() == position:
            raise PromQLError(f"cannot read {text[position:position + 20]!r}")
        kind = found.lastgroup
        tokens.append((kind, found.group(kind)))
        position = found.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.at = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        token = self.peek()
        if token is None or (value is not None and token[1] != value) or (kind is not None and token[0] != kind):
            raise PromQLError(f"expected {value or kind}, found {token[1] if token else 'the end'}")
        self.at += 1
        return token[1]

    def accept(self, value: str) -> bool:
        token = self.peek()
        if token is not None and token[1] == value and token[0] in ("op", "ident"):
            self.at += 1
            return True
        return False

    def parse(self):
        tree = self.binary(0)
        if self.peek() is not None:
            raise PromQLError(f"unexpected {self.peek()[1]!r}")
        return tree

    def binary(self, level: int):
        if level == len(PRECEDENCE):
            return self.unary()
        left = self.binary(level + 1)
        while (token := self.peek()) is not None and token[1] in PRECEDENCE[level] and token[0] in ("op", "ident"):
            operator = self.take()
            if operator in COMPARISONS:
                self.accept("bool")
            node = Binary(operator, left, None)
            if (token := self.peek()) is not None and token[1] in ("on", "ignoring"):
                node.matching = self.take()
                node.matching_labels = self.label_list()
            if (token := self.peek()) is not None and token[1] in ("group_left", "group_right"):
                node.group = self.take()
                if self.peek() and self.peek()[1] == "(":
                    self.label_list()
            node.right = self.binary(level + 1) if operator != "^" else self.binary(level)  # ^ is right-associative
            left = node
        return left

    def unary(self):
        if self.accept("-"):
            return Binary("*", Number(-1.0), self.unary())
        self.accept("+")
        return self.primary()

    def label_list(self) -> list[str]:
        self.take("(")
        labels = []
        while not self.accept(")"):
            labels.append(self.take(kind="ident"))
            if not self.accept(","):
                self.take(")")
                break
        return labels

    def args(self) -> list:
        self.take("(")
        args = []
        while not self.accept(")"):
            args.append(self.binary(0))
            if not self.accept(","):
                self.take(")")
                break
        return args

    def primary(self):
        kind, value = self.peek() or ("", "")
        if kind == "number":
            self.at += 1
            return Number(float(value))
        if kind == "string":
            self.at += 1
            return String(value[1:-1])
        if value == "(":
            self.at += 1
            inner = self.binary(0)
            self.take(")")
            return self.postfix(inner)
        if kind != "ident" or value in KEYWORDS:
            raise PromQLError(f"unexpected {value or 'end'}")
        self.at += 1
        if value in AGGREGATIONS | PARAM_AGGREGATIONS:
            grouping, labels = None, []
            if self.peek() and self.peek()[1] in ("by", "without"):
                grouping = self.take()
                labels = self.label_list()
            args = self.args()
            if grouping is None and self.peek() and self.peek()[1] in ("by", "without"):
                grouping = self.take()
                labels = self.label_list()
            return Aggregation(value, grouping, labels, args)
        if self.peek() and self.peek()[1] == "(":
            if value not in RANGE_FUNCTIONS | SCALAR_FUNCTIONS | VECTOR_FUNCTIONS | {"histogram_quantile", "vector", "scalar"}:
                raise PromQLError(f"unknown or unsupported function {value}()")
            return Call(value, self.args())
        selector = Selector(value)
        if self.accept("{"):
            while not self.accept("}"):
                label = self.take(kind="ident")
                operator = self.take()
                if operator not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"bad matcher operator {operator}")
                selector.matchers.append((label, operator, self.take(kind="string")[1:-1]))
                if not self.accept(","):
                    self.take("}")
                    break
        return self.postfix(selector)

    def postfix(self, node):
        token = self.peek()
        if token is not None and token[0] == "range":
            if not isinstance(node, Selector):
                raise PromQLError("subqueries are not supported")
            node.range = token[1]
            self.at += 1
        if self.accept("offset"):
            self.take(kind="duration")
        return node


def parse(text: str):
    return _Parser(text).parse()


def metric_names(tree) -> set[str]:
    """Every metric name the expression reads."""
    if isinstance(tree, Selector):
        return {tree.name}
    children = []
    if isinstance(tree, (Call, Aggregation)):
        children = tree.args
    elif isinstance(tree, Binary):
        children = [tree.left, tree.right]
    return set().union(*(metric_names(child) for child in children)) if children else set()


def legend_labels(legend: str) -> set[str]:
    return set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend or ""))


def exported_series(families) -> tuple[dict[str, set[str]], dict[str, str]]:
    """From ``prometheus_client.parser.text_string_to_metric_families``: sample name -> every label
    name its samples carry, and sample name -> its family's type."""
    labels: dict[str, set[str]] = {}
    types: dict[str, str] = {}
    for family in families:
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
            types[sample.name] = family.type
    return labels, types


def check(tree, exported: dict[str, set[str]], types: dict[str, str] | None = None, *, target_labels: frozenset[str] = frozenset()):
    """(problems, kept labels) of an expression; kept is None for a scalar. ``target_labels`` are
    labels Prometheus adds when it scrapes (``job``, ``instance``): on every series, never in ``/metrics``."""
    problems: list[str] = []
    types = types or {}

    def labels_of(name: str) -> set[str]:
        return exported.get(name, set()) | set(target_labels)

    def walk(node) -> set[str] | None:
        if isinstance(node, (Number, String)):
            return None
        if isinstance(node, Selector):
            if node.name not in exported:
                problems.append(f"{node.name} is not exported")
                return set(target_labels)
            for label, _, _ in node.matchers:
                if label != "__name__" and label not in labels_of(node.name):
                    problems.append(f"{node.name} has no label {label!r} (it has {sorted(exported[node.name])})")
            return labels_of(node.name)
        if isinstance(node, Call):
            name = node.function
            if name in SCALAR_FUNCTIONS:
                return None
            if name == "vector":
                walk(node.args[0])
                return set()
            if name == "scalar":
                walk(node.args[0])
                return None
            if name == "histogram_quantile":
                if len(node.args) != 2:
                    problems.append("histogram_quantile takes (quantile, buckets)")
                    return set()
                kept = walk(node.args[1]) or set()
                if "le" not in kept:
                    problems.append("histogram_quantile needs the 'le' label (sum by (le, ...))")
                if not any(n.endswith("_bucket") for n in metric_names(node.args[1])):
                    problems.append("histogram_quantile of a series that is not a histogram's _bucket")
                return kept - {"le"}
            if name in RANGE_FUNCTIONS:
                vector = node.args[-1]
                if not isinstance(vector, Selector) or vector.range is None:
                    problems.append(f"{name}() needs a range selector like metric[5m]")
                elif name in COUNTER_FUNCTIONS and (types.get(vector.name) == "gauge" or not vector.name.endswith(COUNTER_SUFFIXES)):
                    problems.append(f"{name}() of {vector.name}, which is not a counter")
                for arg in node.args[:-1]:
                    walk(arg)
                return walk(vector)
            kept = None
            for arg in node.args:
                result = walk(arg)
                kept = result if kept is None else kept
            return kept if kept is not None else set()
        if isinstance(node, Aggregation):
            vector = node.args[-1]
            for arg in node.args[:-1]:
                walk(arg)
            inner = walk(vector) or set()
            if node.grouping == "by":
                for label in node.labels:
                    if label not in inner:
                        problems.append(f"{node.operator} by ({label}): {sorted(metric_names(vector))} have no label {label!r}")
                return set(node.labels)
            if node.grouping == "without":
                return inner - set(node.labels)
            return set()
        if isinstance(node, Binary):
            left, right = walk(node.left), walk(node.right)
            if node.operator in SET_OPERATORS:
                if node.operator == "or":
                    return (left or set()) | (right or set())
                return left or set()
            if left is None or right is None:
                return right if left is None else left
            if node.matching == "on":
                for label in node.matching_labels:
                    if label not in left or label not in right:
                        problems.append(f"on({label}): both sides need the label {label!r}")
                return left
            if node.matching == "ignoring":
                if left - set(node.matching_labels) != right - set(node.matching_labels) and node.group is None:
                    problems.append(f"'{node.operator}' ignoring(...) of vectors with different labels {sorted(left)} / {sorted(right)}")
                return left
            if left != right and node.group is None:
                problems.append(f"'{node.operator}' of vectors with different labels {sorted(left)} / {sorted(right)}: no series would match")
            return left
        raise PromQLError(f"cannot check {node!r}")

    kept = walk(tree)
    return problems, kept
