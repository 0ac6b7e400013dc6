"""The story as a graph an operator can read: fragments, the choices between them and their
gates (VIP, an item, a price), as text for a terminal or as Graphviz ``dot``.

``yabot story`` prints it; ``yabot story --dot | dot -Tsvg > story.svg`` draws it.
"""

from __future__ import annotations

from yabot.domain.narrative import Choice, Fragment
from yabot.domain.users import Language
from yabot.seed import Story


def gates(choice: Choice) -> list[str]:
    """What a choice asks or gives, in words: ``VIP``, ``needs item key``, ``costs 3``…"""
    found = []
    if choice.requires_vip:
        found.append("VIP")
    if choice.requires_item is not None:
        found.append(f"needs item {choice.requires_item}")
    if choice.cost_besitos:
        found.append(f"costs {choice.cost_besitos} besitos")
    if choice.reward_besitos:
        found.append(f"pays {choice.reward_besitos} besitos")
    return found


def _order(story: Story) -> list[Fragment]:
    """Fragments breadth-first from the start (the order a reader meets them)."""
    seen = [story.start]
    for fragment_id in seen:
        for choice in story.fragments[fragment_id].choices:
            if choice.next_fragment not in seen:
                seen.append(choice.next_fragment)
    seen += sorted(set(story.fragments) - set(seen))
    return [story.fragments[fragment_id] for fragment_id in seen]


def render_text(story: Story, language: Language = "en") -> str:
    lines = [f"start: {story.start}; {len(story.fragments)} fragments, "
             f"{len(story.items)} items; endings: {', '.join(sorted(story.endings))}"]
    for fragment in _order(story):
        marks = ["VIP"] if fragment.vip_only else []
        marks += ["ending"] if fragment.ending else []
        suffix = f"  [{', '.join(marks)}]" if marks else ""
        lines.append(f"{fragment.fragment_id}: {fragment.title.in_(language)}{suffix}")
        for choice in fragment.choices:
            gated = gates(choice)
            suffix = f"  [{', '.join(gated)}]" if gated else ""
            lines.append(f"  {choice.choice_id} -> {choice.next_fragment}: "
                         f"{choice.label.in_(language)}{suffix}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    """A dot string literal (quotes and backslashes escaped, newlines as ``\\n``)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render_dot(story: Story, language: Language = "en") -> str:
    """Graphviz: boxes for fragments (the start doubled, VIP filled, endings rounded), one
    labelled edge per choice (its gates under its label, VIP dashed)."""
    lines = ["digraph story {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for fragment in _order(story):
        title = f"{fragment.fragment_id}\n{fragment.title.in_(language)}"
        attributes = [f"label={_quoted(title)}"]
        if fragment.fragment_id == story.start:
            attributes.append("peripheries=2")
        styles = (["filled"] if fragment.vip_only else []) + (["rounded"] if fragment.ending
                                                              else [])
        if styles:
            attributes.append(f'style="{",".join(styles)}"')
        if fragment.vip_only:
            attributes.append('fillcolor="gold"')
        lines.append(f"  {_quoted(fragment.fragment_id)} [{', '.join(attributes)}];")
    for fragment in _order(story):
        for choice in fragment.choices:
            label = "\n".join([choice.label.in_(language), *gates(choice)])
            attributes = [f"label={_quoted(label)}"]
            if choice.requires_vip:
                attributes.append("style=dashed")
            lines.append(f"  {_quoted(fragment.fragment_id)} -> "
                         f"{_quoted(choice.next_fragment)} [{', '.join(attributes)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
