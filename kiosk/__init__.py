"""The Lumbarest touchscreen kiosk: a Kivy UI with no control authority.

It sends requests to the appliance API (docs/protocol.md) and renders the pushed ``state``. The
logic modules (:mod:`kiosk.logic`, :mod:`kiosk.i18n`, :mod:`kiosk.api`, :mod:`kiosk.usb`) import no
Kivy, so they can be unit-tested without a display; :mod:`kiosk.ui` (the app) and
:mod:`kiosk.screens` (one module per screen) are the Kivy part.
"""
