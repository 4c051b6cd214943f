"""``harstream web``: an HTTP and WebSocket front door to the engine for phones and web apps.

A phone's browser (the page at ``GET /``) or the Sensor Logger app (``POST
/push``) sends motion samples; the gateway maps their units and axes to
protocol v1 chunks (:mod:`harstream.web.convert`), pushes them to the
engine's PULL socket and forwards the engine's predictions, ``$error`` and
``$stats`` for each phone's stream back to it, and to web apps that ask for
them (``/labels``). docs/phones.md is the user's guide.

aiohttp, segno and cryptography are imported only here and by
:mod:`harstream.cli.web` (the ``web`` extra: ``pip install 'harstream[web]'``).
"""
