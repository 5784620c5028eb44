// The web console's only script. Pages work without it; it adds an upload progress bar
// and copy buttons. Loaded from this site, so the pages' CSP allows no inline code.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      const text = source.value !== undefined ? source.value : source.textContent;
      try {
        await navigator.clipboard.writeText(text.trim());
      } catch (_) {
        // No clipboard (plain http off localhost): select it for Ctrl+C instead.
        if (source.select) source.select();
        else window.getSelection().selectAllChildren(source);
      }
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  }

  for (const form of document.querySelectorAll("form[data-upload]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const progress = form.querySelector("progress");
      const status = form.querySelector(".upload-status");
      const button = form.querySelector("button[type=submit]");
      const request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) {
          const percent = Math.round((e.loaded / e.total) * 100);
          progress.value = percent;
          status.textContent = `Uploading… ${percent} %`;
        }
      });
      request.addEventListener("load", () => {
        const page = new DOMParser().parseFromString(request.responseText, "text/html");
        const notice = page.querySelector(".notice");
        if (request.status >= 200 && request.status < 300) {
          window.location.reload();
        } else {
          status.textContent = notice ? notice.textContent : `Upload failed (${request.status}).`;
          progress.hidden = true;
          button.disabled = false;
        }
      });
      request.addEventListener("error", () => {
        status.textContent = "Upload failed: the connection was lost. Nothing was saved.";
        progress.hidden = true;
        button.disabled = false;
      });
      progress.value = 0;
      progress.hidden = false;
      button.disabled = true;
      status.textContent = "Uploading…";
      request.send(new FormData(form));
    });
  }
});
