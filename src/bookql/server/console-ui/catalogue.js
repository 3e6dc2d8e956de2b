// Screens anyone may open: the overview, browsing, and a book's page.
import { call, currentUser } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { figures, h, heading, money, number, table, webUrl, when } from "./dom.js";

const PAGE_SIZE = 20;

export async function overview() {
  const { stats } = await call("ConsoleOverview");
  const buckets = stats.priceHistogram;
  const ratings = stats.ratingDistribution;
  const words = ["", "one star", "two stars", "three stars", "four stars", "five stars"];
  return [
    heading("Catalogue overview"),
    figures("Catalogue figures", [
      ["totalBooks", "Books listed", number(stats.totalBooks)],
      ["totalCategories", "Categories", number(stats.totalCategories)],
      ["totalStock", "Copies in stock", number(stats.totalStock)],
      ["averagePrice", "Average price", money(stats.averagePrice)],
      ["medianPrice", "Median price", money(stats.medianPrice)],
      ["minPrice", "Cheapest", money(stats.minPrice)],
      ["maxPrice", "Dearest", money(stats.maxPrice)],
      ["averageRating", "Average rating", number(stats.averageRating, 2)],
    ]),
    h("div", { class: "charts" },
      h("section", {},
        barChart(
          "Prices",
          `Histogram of ${stats.totalBooks} prices in £5 bands; counts in the table below.`,
          buckets.map((bucket) => `£${bucket.low}`),
          buckets.map((bucket) => bucket.count),
          "Price band",
          "Books",
        ),
        h("details", {}, h("summary", {}, "Prices as a table"),
          table("Books per price band", [
            ["Band", (b) => `${money(b.low)} – ${money(b.high)}`],
            ["Books", (b) => number(b.count), { numeric: true }],
          ], buckets, { id: "price-histogram" }))),
      h("section", {},
        barChart(
          "Ratings",
          `Books by rating: ${ratings.map((r) => `${r.count} with ${words[r.rating]}`).join(", ")}.`,
          ratings.map((r) => `${r.rating}★`),
          ratings.map((r) => r.count),
          "Rating",
          "Books",
        ),
        h("details", {}, h("summary", {}, "Ratings as a table"),
          table("Books per rating", [
            ["Rating", (r) => `${r.rating} of 5`],
            ["Books", (r) => number(r.count), { numeric: true }],
          ], ratings, { id: "rating-distribution" })))),
    h("h2", {}, "Categories"),
    table(null, [
      ["Category", (c) => h("a", { href: `#/browse?category=${encodeURIComponent(c.category.slug)}` }, c.category.name)],
      ["Books", (c) => number(c.bookCount), { numeric: true }],
      ["Average price", (c) => money(c.averagePrice), { numeric: true }],
      ["Cheapest", (c) => money(c.minPrice), { numeric: true }],
      ["Dearest", (c) => money(c.maxPrice), { numeric: true }],
      ["Average rating", (c) => number(c.averageRating, 2), { numeric: true }],
      ["In stock", (c) => number(c.totalStock), { numeric: true }],
    ], stats.categories, { id: "categories" }),
  ];
}

const ORDERS = {
  "": ["Site order", null],
  relevance: ["Relevance (with a search)", [{ field: "RELEVANCE", direction: "DESC" }]],
  "title-asc": ["Title, A to Z", [{ field: "TITLE", direction: "ASC" }]],
  "price-asc": ["Price, lowest first", [{ field: "PRICE", direction: "ASC" }]],
  "price-desc": ["Price, highest first", [{ field: "PRICE", direction: "DESC" }]],
  "rating-desc": ["Rating, best first", [{ field: "RATING", direction: "DESC" }]],
  "availability-desc": ["Copies in stock, most first", [{ field: "AVAILABILITY", direction: "DESC" }]],
};

function filterOf(params) {
  const filter = {};
  if (params.get("category")) filter.category = params.get("category");
  if (params.get("priceMin")) filter.priceMin = Number(params.get("priceMin"));
  if (params.get("priceMax")) filter.priceMax = Number(params.get("priceMax"));
  if (params.get("ratingMin")) filter.ratingMin = Number(params.get("ratingMin"));
  if (params.get("inStock")) filter.inStock = true;
  return Object.keys(filter).length ? filter : null;
}

function field(label, control) {
  return h("label", {}, label, control);
}

export async function browse(route) {
  const params = route.params;
  const [{ categories }, page] = await Promise.all([
    call("ConsoleCategories"),
    call("ConsoleBooks", {
      ...(params.get("before")
        ? { last: PAGE_SIZE, before: params.get("before") }
        : { first: PAGE_SIZE, after: params.get("after") || null }),
      filter: filterOf(params),
      // Relevance ranks the matches of a search: without words, the site's order.
      orderBy: params.get("order") === "relevance" && !params.get("q")
        ? null
        : ORDERS[params.get("order") ?? ""]?.[1] ?? null,
      search: params.get("q") || null,
    }),
  ]);
  const books = page.books;
  const pageNumber = Number(params.get("page") || 1);
  const form = h("form", { class: "filters", role: "search", "aria-label": "Find books" },
    field("Words", h("input", { type: "search", name: "q", value: params.get("q") ?? "" })),
    field("Category", h("select", { name: "category" },
      h("option", { value: "" }, "Any"),
      categories.map((c) => h("option", { value: c.slug, selected: c.slug === params.get("category") }, c.name)))),
    field("Price from (£)", h("input", { type: "number", name: "priceMin", min: 0, step: "0.01", value: params.get("priceMin") ?? "" })),
    field("Price to (£)", h("input", { type: "number", name: "priceMax", min: 0, step: "0.01", value: params.get("priceMax") ?? "" })),
    field("Rating at least", h("select", { name: "ratingMin" },
      h("option", { value: "" }, "Any"),
      [1, 2, 3, 4, 5].map((r) => h("option", { value: r, selected: String(r) === params.get("ratingMin") }, `${r} of 5`)))),
    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "inStock", checked: !!params.get("inStock") }), " In stock only"),
    field("Order", h("select", { name: "order" },
      Object.entries(ORDERS).map(([key, [label]]) => h("option", { value: key, selected: key === (params.get("order") ?? "") }, label)))),
    h("button", { type: "submit" }, "Show books"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.set(key, value);
    window.location.hash = `#/browse?${next}`;
  });
  const moved = (changes) => {
    const next = new URLSearchParams(params);
    next.delete("after");
    next.delete("before");
    for (const [key, value] of Object.entries(changes)) next.set(key, value);
    return `#/browse?${next}`;
  };
  const hasNext = params.get("before") ? true : books.pageInfo.hasNextPage;
  const hasPrevious = pageNumber > 1;
  return [
    heading("Browse books"),
    form,
    h("p", { class: "status", role: "status", id: "result-count" },
      `${number(books.totalCount)} ${books.totalCount === 1 ? "book" : "books"} found; page ${pageNumber}.`),
    table(null, [
      ["Title", (b) => h("a", { href: `#/book/${encodeURIComponent(b.upc)}` }, b.title)],
      ["Category", (b) => b.category.name],
      ["Price", (b) => money(b.price), { numeric: true }],
      ["Rating", (b) => `${b.rating} of 5`],
      ["In stock", (b) => number(b.availability), { numeric: true }],
    ], books.edges.map((edge) => edge.node), { id: "books" }),
    h("nav", { class: "pager", "aria-label": "Pages" },
      hasPrevious && books.pageInfo.startCursor
        ? h("a", { href: moved({ before: books.pageInfo.startCursor, page: pageNumber - 1 }), rel: "prev" }, "Previous page")
        : null,
      hasNext && books.pageInfo.endCursor && books.edges.length
        ? h("a", { href: moved({ after: books.pageInfo.endCursor, page: pageNumber + 1 }), rel: "next" }, "Next page")
        : null),
  ];
}

export async function book(route) {
  const { book } = await call("ConsoleBook", { upc: route.arg });
  if (!book) return [heading("No such book"), h("p", {}, `No book has the UPC ${route.arg}.`)];
  const history = [...book.priceHistory].sort((a, b) => Date.parse(a.observedAt) - Date.parse(b.observedAt));
  const prediction = h("section", { "aria-labelledby": "prediction-heading", id: "prediction" },
    h("h2", { id: "prediction-heading" }, "Predicted price"));
  if (currentUser()) {
    prediction.append(h("p", { class: "status", role: "status" }, "Asking the price model…"));
    call("ConsolePredict", { upc: book.upc }).then(
      ({ predictPrice: p }) => prediction.lastChild.replaceWith(h("p", { "data-prediction": "" },
        `The price model (version ${p.modelVersion}) predicts ${money(p.price)}, `,
        `with a 90% interval from ${money(p.lower)} to ${money(p.upper)}. `,
        `The site asks ${money(book.price)}.`)),
      (error) => prediction.lastChild.replaceWith(h("p", { class: "error" }, `No prediction: ${error.message}`)),
    );
  } else {
    prediction.append(h("p", {}, h("a", { href: "#/signin" }, "Sign in"), " to see the price model's prediction for this book."));
  }
  return [
    heading(book.title),
    h("dl", { class: "facts" },
      [
        ["UPC", book.upc],
        ["Category", h("a", { href: `#/browse?category=${encodeURIComponent(book.category.slug)}` }, book.category.name)],
        ["Price", money(book.price)],
        ["Price before tax", money(book.priceExclTax)],
        ["Rating", `${book.rating} of 5`],
        ["In stock", number(book.availability)],
        ["Reviews", number(book.numReviews)],
        ["First seen", when(book.firstSeenAt)],
        ["Last seen", when(book.lastSeenAt)],
        ["Removed", book.removedAt ? when(book.removedAt) : "no, still listed"],
        ["On the site", webUrl(book.productUrl)
          ? h("a", { href: webUrl(book.productUrl), rel: "noopener noreferrer" }, book.productUrl)
          : book.productUrl],
      ].map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])),
    h("h2", {}, "Description"),
    h("p", { class: "description", id: "description" }, book.description ?? "The site gives no description."),
    h("h2", {}, "Price history"),
    lineChart(
      "Price over time",
      `The price at ${history.length} observation${history.length === 1 ? "" : "s"}; the table below lists them.`,
      history.map((point) => Date.parse(point.observedAt) / 1000),
      history.map((point) => point.price),
      "Price (£)",
    ),
    h("details", {}, h("summary", {}, "Price history as a table"),
      table("Observed prices", [
        ["Observed", (p) => when(p.observedAt)],
        ["Price", (p) => money(p.price), { numeric: true }],
        ["In stock", (p) => number(p.availability), { numeric: true }],
      ], history, { id: "price-history" })),
    prediction,
  ];
}
