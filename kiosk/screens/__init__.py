"""Kiosk screens kept in their own modules (the Rooms board: :mod:`kiosk.screens.rooms`)."""
