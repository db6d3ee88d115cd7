// Django's two-box picker (SelectFilter: a user's groups and permissions, a group's
// permissions) puts its search help in an aria-label on a bare <span>, where ARIA does
// not allow one: screen readers skip it and axe-core calls it serious. As an image the
// icon may carry that label. The picker is built on the window's load event by a script
// that comes after this one, hence the turn of the event loop.
window.addEventListener("load", () => {
  setTimeout(() => {
    document.querySelectorAll(".search-label-icon[aria-label]:not([role])").forEach((icon) => {
      icon.setAttribute("role", "img");
    });
  });
});
