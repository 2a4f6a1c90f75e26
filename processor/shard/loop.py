"""The processor's MultiLang loop: amazon_kclpy's ``KCLProcess``, with one change (below). Imported by
``shard/main.py`` only once it has checked that amazon-kclpy (the ``worker`` extra) is installed."""

from __future__ import annotations

from amazon_kclpy import kcl


class Process(kcl.KCLProcess):
    """amazon_kclpy's loop, with one change: the line read from the daemon is dropped once parsed, before the
    action runs. Its own loop keeps it until the next line has been read, so a 10,000-record call's ~40 MB of
    text stayed alive through the whole call (and its flushes) and beside the next call's line while that one
    was read (docs/sizing.md)."""

    def run(self) -> None:
        while self._handle_next():
            pass

    def _handle_next(self) -> bool:
        line = self.io_handler.read_line()
        if not line:
            return False
        action = self.io_handler.load_action(line)
        del line
        self._perform_action(action)
        self._report_done(action.action)
        return True
