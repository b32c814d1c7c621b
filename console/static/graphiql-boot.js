// GraphiQL for streamhubd: queries and mutations over POST /graphql,
// subscriptions over graphql-ws on the same path.  The console's sign-in
// (localStorage "streamhub.auth") gives the token, as a Bearer header on
// HTTP and as the connection_init payload's `token` on the WebSocket.
'use strict';
(function () {
  let token = null;
  try {
    const auth = JSON.parse(localStorage.getItem('streamhub.auth') || 'null');
    token = auth && auth.accessToken;
  } catch (e) { /* no stored sign-in */ }
  const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') +
    location.host + '/graphql';
  const fetcher = GraphiQL.createFetcher({
    url: '/graphql',
    subscriptionUrl: wsUrl,
    headers: token ? { Authorization: 'Bearer ' + token } : {},
    wsConnectionParams: token ? { token: token } : {},
  });
  const defaultQuery = [
    '# StreamHub GraphQL explorer: the schema is in the Docs panel.',
    '# Run a query, a mutation, or a subscription (it streams below).',
    '',
    'query LiveStreams($first: Int) {',
    '  liveStreams(first: $first) {',
    '    totalCount',
    '    edges { node { id title viewerCount broadcaster { username } } }',
    '  }',
    '}',
    '',
  ].join('\n');
  const root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: defaultQuery,
    defaultVariables: '{ "first": 10 }',
    defaultEditorToolsVisibility: true,
  }));
})();
