import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './styles.css';
import { linkClick, useLocation, type Location } from './router';
import { SearchView } from './views/search';
import { TraceView } from './views/trace';
import { CompareView } from './views/compare';
import { ServiceMapView } from './views/servicemap';
import { ServicesView } from './views/services';
import { IncidentsView } from './views/incidents';

/** The views. Each has a path prefix, a nav label and a component. */
interface Route {
  prefix: string;
  label: string;
  /** Shown in the top navigation (the trace view is reached from results). */
  nav: boolean;
  view: (p: { loc: Location }) => preact.JSX.Element;
}

const ROUTES: Route[] = [
  { prefix: '/search', label: 'Search', nav: true, view: SearchView },
  { prefix: '/trace/', label: 'Trace', nav: false, view: TraceView },
  { prefix: '/compare', label: 'Compare', nav: true, view: CompareView },
  { prefix: '/dependencies', label: 'Service map', nav: true, view: ServiceMapView },
  { prefix: '/services', label: 'Services', nav: true, view: ServicesView },
  { prefix: '/incidents', label: 'Incidents', nav: true, view: IncidentsView },
];

function routeFor(path: string): Route {
  return ROUTES.find((r) => path.startsWith(r.prefix)) ?? ROUTES[0];
}

type Theme = 'light' | 'dark';

function initialTheme(): Theme {
  const saved = localStorage.getItem('faultline.theme');
  if (saved === 'light' || saved === 'dark') return saved;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function App() {
  const loc = useLocation();
  const [theme, setTheme] = useState<Theme>(initialTheme);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  const route = routeFor(loc.path);
  const View = route.view;
  useEffect(() => {
    document.title = `${route.label} · Faultline`;
  }, [route]);
  return (
    <div class="app">
      <header class="topbar">
        <a class="brand" href="/search" onClick={linkClick}>
          Faultline
        </a>
        <nav>
          {ROUTES.filter((r) => r.nav).map((r) => (
            <a href={r.prefix} onClick={linkClick} class={r === route ? 'active' : ''} aria-current={r === route ? 'page' : undefined}>
              {r.label}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        <button
          type="button"
          class="theme"
          title="Toggle dark mode"
          onClick={() => {
            const t = theme === 'dark' ? 'light' : 'dark';
            localStorage.setItem('faultline.theme', t);
            setTheme(t);
          }}
        >
          {theme === 'dark' ? 'Light mode' : 'Dark mode'}
        </button>
      </header>
      <main>
        <View loc={loc} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
