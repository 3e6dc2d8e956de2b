// Apollo Client's PersistedQueryLink against a running bookql: node persisted.mjs URL
// Prints one JSON line: what each client received and the requests it sent.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const url = process.argv[2];
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

const QUERY = gql`
  query TwoBooks($first: Int!) {
    books(first: $first) {
      totalCount
      edges {
        node {
          title
        }
      }
    }
  }
`;

async function run(useGET) {
  const sent = [];
  const recording = async (input, init) => {
    const response = await fetch(input, init);
    const target = new URL(String(input));
    sent.push({
      method: init?.method ?? "GET",
      status: response.status,
      withQuery:
        target.searchParams.has("query") || String(init?.body ?? "").includes('"query"'),
    });
    return response;
  };
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: new PersistedQueryLink({ sha256, useGETForHashedQueries: useGET }).concat(
      new HttpLink({ uri: `${url}/graphql`, fetch: recording }),
    ),
  });
  const result = await client.query({ query: QUERY, variables: { first: 2 }, fetchPolicy: "no-cache" });
  return { data: result.data ?? null, error: result.error ? String(result.error) : null, sent };
}

// First client registers (hash alone, refused; then hash and query); the next ones, new
// processes' worth of clients, send the hash alone and are answered.
const first = await run(true);
const again = await run(true);
const posted = await run(false);
console.log(JSON.stringify({ first, again, posted }));
