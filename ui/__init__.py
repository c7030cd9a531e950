"""Plugin GUI: menu, toolbar, dialogs."""
