"""``hub serve-web``: read-only pages for the steering groups over the hub's output topics.

Pure parts (unit tested without a server or broker): :mod:`~hub.web.views` (view models),
:mod:`~hub.web.gantt` (the SVG timeline), :mod:`~hub.web.access` (accounts and groups),
:mod:`~hub.web.state` (the materialised view). Wiring: :mod:`~hub.web.follow` (the consumer
thread), :mod:`~hub.web.app` (aiohttp routes), :mod:`~hub.web.serve` (both together).
"""
