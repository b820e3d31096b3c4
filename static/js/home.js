// Home page: create an experiment, search and sort the list.
import { api, makeSortable } from "./common.js";

const form = document.getElementById("create-experiment");
const errorBox = document.getElementById("create-error");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorBox.classList.add("hidden");
  const data = new FormData(form);
  try {
    const experiment = await api("POST", "/api/experiments", {
      name: String(data.get("name") || "").trim(),
      description: String(data.get("description") || "").trim(),
    });
    window.location.href = `/experiments/${experiment.id}`;
  } catch (err) {
    errorBox.textContent = `Could not create the experiment: ${err.message}`;
    errorBox.classList.remove("hidden");
  }
});

const table = document.getElementById("experiments");
if (table) {
  makeSortable(table);
  const search = document.getElementById("experiment-search");
  const noMatch = document.getElementById("no-match");
  search.addEventListener("input", () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of table.tBodies[0].rows) {
      const ok = words.every((w) => row.dataset.search.includes(w));
      row.classList.toggle("hidden", !ok);
      shown += ok ? 1 : 0;
    }
    noMatch.classList.toggle("hidden", shown > 0);
  });
}
