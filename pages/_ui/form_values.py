"""A form whose values live in one session-state dict and reach each widget as its default.

No widget value is set through the Session State API: a value set that way reaches the browser
only with the run that set it, and when a later run supersedes that run first (a second rerun
while the page still draws, as under load) the browser mounts the widget at its own default (an
empty box, 0, unticked, the first option) and sends that back with the next edit, so the form
saves what nobody chose. Here each widget is drawn with the form's value as its default, which
arrives with the widget in every run; loading new values bumps a generation in the widget keys,
so the browser mounts fresh widgets at the new defaults (pages/rules.py's form does the same)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st


class FormValues:
    """The values of the form `name` (widget keys "<name>.<generation>.<field>"), kept in
    st.session_state["<name>_state"]; dropping that key (forget) reloads the form."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state_key = f"{name}_state"
        self._generation_key = f"{name}_generation_state"  # kept when the values are dropped

    def loaded(self) -> bool:
        return self.state_key in st.session_state

    def load(self, values: Mapping[str, Any]) -> None:
        """Put values in the form before its widgets are drawn: they are drawn afresh."""
        st.session_state[self._generation_key] = st.session_state.get(self._generation_key,
                                                                      0) + 1
        st.session_state[self.state_key] = dict(values)

    def forget(self) -> None:
        """Load the form again (from the store) before it is next drawn."""
        st.session_state.pop(self.state_key, None)

    def key(self, field: str) -> str:
        return f"{self.name}.{st.session_state.get(self._generation_key, 0)}.{field}"

    def values(self) -> dict[str, Any]:
        return dict(st.session_state[self.state_key])

    def __getitem__(self, field: str) -> Any:
        return st.session_state[self.state_key][field]

    def get(self, field: str, default: Any = None) -> Any:
        return st.session_state.get(self.state_key, {}).get(field, default)

    def keep(self, **values: Any) -> None:
        """The widgets' values of this run: the defaults they are drawn with in the next."""
        st.session_state[self.state_key].update(values)
