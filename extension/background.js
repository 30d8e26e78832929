// The extension's service worker. Its one job: on first install, open Options so
// the user can point the extension at their backend (the popup does all the rest).
chrome.runtime.onInstalled.addListener(({ reason }) => {
  if (reason === chrome.runtime.OnInstalledReason.INSTALL) chrome.runtime.openOptionsPage();
});
