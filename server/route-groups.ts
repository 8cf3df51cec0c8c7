import type { RouteGroup } from './route-group.js';
import { connectorsRoutes } from './routes/connectors-routes.js';
import { deliveriesRoutes } from './routes/deliveries-routes.js';
import { runsRoutes } from './routes/runs-routes.js';
import { statusRoutes } from './routes/status-routes.js';
import { syncsRoutes } from './routes/syncs-routes.js';
import { tokensRoutes } from './routes/tokens-routes.js';

/** Every route group the API serves; adding one is a file under server/routes/ and a line here. */
export const routeGroups: readonly RouteGroup[] = [
  connectorsRoutes,
  statusRoutes,
  runsRoutes,
  deliveriesRoutes,
  syncsRoutes,
  tokensRoutes,
];
