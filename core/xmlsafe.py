"""The one hardened lxml parser configuration: no DTDs, no entity expansion, no network, no huge trees.

Every place that parses XML we did not write ourselves (submissions, server answers, downloaded forms) builds
its parser here, so the protection against billion-laughs and external entities is decided once.
"""

from __future__ import annotations

from lxml import etree


def hardened_parser(*, remove_comments: bool = False, remove_blank_text: bool = False) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_pis=True,
        remove_comments=remove_comments,
        remove_blank_text=remove_blank_text,
    )
