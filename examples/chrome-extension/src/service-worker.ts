// The extension's service worker does one thing: a click on the toolbar button opens the side
// panel, where the engine lives (a service worker cannot start the engine's Worker, and is
// stopped after 30 s without events). The side panel is global (`side_panel.default_path`), so
// every tab of every window shares it and its one engine.
/// <reference path="./chrome.d.ts" />

chrome.sidePanel.setPanelBehavior({ openPanelOnActionClick: true }).catch((err: unknown) => console.error('chunklm: setPanelBehavior failed:', err));
