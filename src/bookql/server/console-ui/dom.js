// Building the page from data. Text is only ever text: strings become text nodes, attributes
// are set one by one, and nothing is parsed as HTML (crawled titles and descriptions included).

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** A link's target only when it is a web address: never `javascript:` or `data:` from data. */
export function webUrl(value) {
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

const GBP = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP" });
const NUMBER = new Intl.NumberFormat("en-GB");

export function money(value) {
  return value === null || value === undefined ? "—" : GBP.format(value);
}

export function number(value, digits = 0) {
  if (value === null || value === undefined) return "—";
  return digits ? value.toFixed(digits) : NUMBER.format(value);
}

export function when(value) {
  return value ? new Date(value).toLocaleString("en-GB", { timeZone: "UTC" }) + " UTC" : "—";
}

/** A table: `columns` are [heading, (row) => cell, {numeric}]; cells are text or nodes. */
export function table(caption, columns, rows, attributes = {}) {
  return h(
    "table",
    attributes,
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map(([heading, , options]) =>
      h("th", { scope: "col", class: options?.numeric ? "num" : null }, heading)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell, options]) =>
      h("td", { class: options?.numeric ? "num" : null }, cell(row)))))),
  );
}

/** A definition list of figures, each `dd` marked with `data-figure` (its field name). */
export function figures(label, items) {
  return h("dl", { class: "figures", "aria-label": label },
    items.map(([name, term, value]) => h("div", {}, h("dt", {}, term), h("dd", { "data-figure": name }, value))));
}

export function heading(text) {
  return h("h1", { tabindex: "-1" }, text);
}

/** A live region: its text changes are announced. */
export function liveStatus(text = "") {
  return h("p", { class: "status", role: "status", "aria-live": "polite" }, text);
}
