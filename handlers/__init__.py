"""Feature plug-ins. Every module here whose name does not start with `_` exports `routes`."""
