// build.mjs gives the GraphQL schema (every gql/schema/*.graphqls) as a string to the GraphiQL bundle.
declare module 'kiem:schema' {
  const sdl: string;
  export default sdl;
}
declare module '*.css';
