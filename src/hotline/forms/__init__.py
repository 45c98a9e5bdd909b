"""Formatted notifications: templates as versioned data, typed fields, rendering.

Pure: nothing here touches the store, the network or a web framework.

- :mod:`hotline.forms.model` — loading templates (``templates/*.toml``) and validating a
  notification's fields against one (:func:`~hotline.forms.model.validate`).
- :mod:`hotline.forms.render` — one notification in a reader's language (Babel).
- :mod:`hotline.forms.service` — storing, sending and receiving them (the one module that
  knows about the store and the outbox).
"""
