// Starts fetching the viewer's data while plotly.js and the page load (a plain script in the
// page head; the session id comes from its data-session-id attribute, so no inline script).
window.viewerResponse = fetch(`/api/sessions/${document.currentScript.dataset.sessionId}/viewer`);
