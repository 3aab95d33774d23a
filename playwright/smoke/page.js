// What every smoke page does with its outcome: `data-status` on <body> tells the tests (and
// run-smoke.mjs) the page has finished, and a failure is shown and kept in `#report`.
export function runPage(main) {
  const report = document.getElementById('report');
  main(report).then(
    () => {
      document.body.dataset.status = 'done';
    },
    (err) => {
      const message = String(err?.message ?? err);
      report.innerHTML = `<p class="fail">Error: ${message}</p>`;
      report.dataset.error = message;
      document.body.dataset.status = 'error';
      console.error(err);
    },
  );
}
